"""Per-customer aggregates (ETL) and the model's features derived from them (training).

ETL writes *mergeable* partial aggregates per customer (counts, sums, min/max) for each
split file of a bucket, so a new day's file only adds new partials instead of forcing every
bucket to be recomputed. Training merges the partials of a customer and derives the
features (means and fractions) and the label (any fraud).
Each step exists for Spark DataFrames and for pyarrow tables (``*_arrow``), with the same result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from spark_jobs.schema import TRANSACTION_TYPES

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

KEY = "nameOrig"
BALANCES = ("oldbalanceOrg", "newbalanceOrig", "oldbalanceDest", "newbalanceDest")

# partial column -> how partials of the same customer merge
MERGE: dict[str, str] = {
    "n_tx": "sum",
    "n_fraud": "sum",
    "n_flagged": "sum",
    "sum_amount": "sum",
    "max_amount": "max",
    "min_step": "min",
    "max_step": "max",
    **{f"sum_{b}": "sum" for b in BALANCES},
    "max_oldbalanceOrg": "max",
    **{f"n_{t}": "sum" for t in TRANSACTION_TYPES},
    "sum_errorBalanceOrig": "sum",
    "sum_errorBalanceDest": "sum",
    "n_orig_emptied": "sum",
    "n_dest_zero": "sum",
}

FEATURE_COLUMNS: tuple[str, ...] = (
    "n_tx",
    "mean_amount",
    "max_amount",
    *(f"mean_{b}" for b in BALANCES),
    "max_oldbalanceOrg",
    *(f"frac_{t}" for t in TRANSACTION_TYPES),
    "mean_errorBalanceOrig",
    "mean_errorBalanceDest",
    "frac_orig_emptied",
    "frac_dest_zero",
)
LABEL = "label"


def _partial_exprs() -> dict[str, Column]:
    from pyspark.sql import functions as F

    amount = F.col("amount")
    as_int = lambda cond: F.when(cond, 1).otherwise(0)  # noqa: E731
    exprs: dict[str, Column] = {
        "n_tx": F.count(F.lit(1)),
        "n_fraud": F.sum("isFraud"),
        "n_flagged": F.sum("isFlaggedFraud"),
        "sum_amount": F.sum(amount),
        "max_amount": F.max(amount),
        "min_step": F.min("step"),
        "max_step": F.max("step"),
        **{f"sum_{b}": F.sum(b) for b in BALANCES},
        "max_oldbalanceOrg": F.max("oldbalanceOrg"),
        **{f"n_{t}": F.sum(as_int(F.col("type") == t)) for t in TRANSACTION_TYPES},
        # PaySim's well-known balance inconsistencies: money that appears or vanishes.
        "sum_errorBalanceOrig": F.sum(F.col("newbalanceOrig") + amount - F.col("oldbalanceOrg")),
        "sum_errorBalanceDest": F.sum(F.col("oldbalanceDest") + amount - F.col("newbalanceDest")),
        "n_orig_emptied": F.sum(as_int((F.col("oldbalanceOrg") > 0) & (F.col("newbalanceOrig") == 0))),
        "n_dest_zero": F.sum(
            as_int(
                F.col("type").isin("TRANSFER", "CASH_OUT")
                & (F.col("oldbalanceDest") == 0)
                & (F.col("newbalanceDest") == 0)
            )
        ),
    }
    assert exprs.keys() == MERGE.keys()
    return exprs


def partial_aggregates(transactions: DataFrame) -> DataFrame:
    """One row per customer of ``transactions`` with the mergeable aggregates of MERGE."""
    return transactions.groupBy(KEY).agg(*[expr.alias(name) for name, expr in _partial_exprs().items()])


def merge_partials(partials: DataFrame) -> DataFrame:
    """Merge partial aggregates of the same customer (from several split files) into one row."""
    from pyspark.sql import functions as F

    funcs = {"sum": F.sum, "max": F.max, "min": F.min}
    return partials.groupBy(KEY).agg(*[funcs[how](name).alias(name) for name, how in MERGE.items()])


def customer_features(aggregates: DataFrame) -> DataFrame:
    """The model's feature columns (FEATURE_COLUMNS) and LABEL (1 if any fraud) per customer."""
    from pyspark.sql import functions as F

    n = F.col("n_tx").cast("double")
    mean = lambda name: F.col(name) / n  # noqa: E731
    return aggregates.select(
        KEY,
        F.col("n_tx").cast("double").alias("n_tx"),
        mean("sum_amount").alias("mean_amount"),
        F.col("max_amount"),
        *[mean(f"sum_{b}").alias(f"mean_{b}") for b in BALANCES],
        F.col("max_oldbalanceOrg"),
        *[mean(f"n_{t}").alias(f"frac_{t}") for t in TRANSACTION_TYPES],
        mean("sum_errorBalanceOrig").alias("mean_errorBalanceOrig"),
        mean("sum_errorBalanceDest").alias("mean_errorBalanceDest"),
        mean("n_orig_emptied").alias("frac_orig_emptied"),
        mean("n_dest_zero").alias("frac_dest_zero"),
        (F.col("n_fraud") > 0).cast("double").alias(LABEL),
    )


def partial_aggregates_arrow(transactions: pa.Table) -> pa.Table:
    """The same partial aggregates as :func:`partial_aggregates`, computed with pyarrow.

    Used only for small datums when ETL_ARROW_BELOW_ROWS opts in (a JVM start costs more than
    such a datum's whole aggregation); tests check both give the same table.
    """
    import pyarrow.compute as pc

    t = transactions
    amount, kind = t.column("amount"), t.column("type")
    as_int = lambda mask: pc.cast(mask, pa.int64())  # noqa: E731
    derived = {
        "one": pa.array(np.ones(t.num_rows, dtype=np.int64)),
        **{f"is_{k}": as_int(pc.equal(kind, k)) for k in TRANSACTION_TYPES},
        "err_orig": pc.subtract(pc.add(t.column("newbalanceOrig"), amount), t.column("oldbalanceOrg")),
        "err_dest": pc.subtract(pc.add(t.column("oldbalanceDest"), amount), t.column("newbalanceDest")),
        "emptied": as_int(
            pc.and_(pc.greater(t.column("oldbalanceOrg"), 0), pc.equal(t.column("newbalanceOrig"), 0))
        ),
        "dest_zero": as_int(
            pc.and_(
                pc.is_in(kind, value_set=pa.array(["TRANSFER", "CASH_OUT"])),
                pc.and_(pc.equal(t.column("oldbalanceDest"), 0), pc.equal(t.column("newbalanceDest"), 0)),
            )
        ),
    }
    for name, column in derived.items():
        t = t.append_column(name, column)
    # partial column -> (source column, arrow aggregation); mirrors _partial_exprs
    spec = {
        "n_tx": ("one", "sum"),
        "n_fraud": ("isFraud", "sum"),
        "n_flagged": ("isFlaggedFraud", "sum"),
        "sum_amount": ("amount", "sum"),
        "max_amount": ("amount", "max"),
        "min_step": ("step", "min"),
        "max_step": ("step", "max"),
        **{f"sum_{b}": (b, "sum") for b in BALANCES},
        "max_oldbalanceOrg": ("oldbalanceOrg", "max"),
        **{f"n_{k}": (f"is_{k}", "sum") for k in TRANSACTION_TYPES},
        "sum_errorBalanceOrig": ("err_orig", "sum"),
        "sum_errorBalanceDest": ("err_dest", "sum"),
        "n_orig_emptied": ("emptied", "sum"),
        "n_dest_zero": ("dest_zero", "sum"),
    }
    assert spec.keys() == MERGE.keys()
    grouped = t.group_by(KEY, use_threads=False).aggregate([(src, how) for src, how in spec.values()])
    return pa.table(
        {
            KEY: grouped.column(KEY),
            **{name: grouped.column(f"{src}_{how}") for name, (src, how) in spec.items()},
        }
    )


def merge_partials_arrow(partials: pa.Table) -> pa.Table:
    """:func:`merge_partials` with pyarrow: one row per customer of several files' partials."""
    grouped = partials.group_by(KEY, use_threads=False).aggregate(
        [(name, how) for name, how in MERGE.items()]
    )
    return pa.table({KEY: grouped.column(KEY), **{n: grouped.column(f"{n}_{h}") for n, h in MERGE.items()}})


def customer_features_arrow(aggregates: pa.Table) -> pa.Table:
    """:func:`customer_features` with pyarrow: KEY, FEATURE_COLUMNS (double) and LABEL."""
    import pyarrow.compute as pc

    as_double = lambda name: pc.cast(aggregates.column(name), pa.float64())  # noqa: E731
    n = as_double("n_tx")
    mean = lambda name: pc.divide(as_double(name), n)  # noqa: E731
    columns = {
        KEY: aggregates.column(KEY),
        "n_tx": n,
        "mean_amount": mean("sum_amount"),
        "max_amount": as_double("max_amount"),
        **{f"mean_{b}": mean(f"sum_{b}") for b in BALANCES},
        "max_oldbalanceOrg": as_double("max_oldbalanceOrg"),
        **{f"frac_{t}": mean(f"n_{t}") for t in TRANSACTION_TYPES},
        "mean_errorBalanceOrig": mean("sum_errorBalanceOrig"),
        "mean_errorBalanceDest": mean("sum_errorBalanceDest"),
        "frac_orig_emptied": mean("n_orig_emptied"),
        "frac_dest_zero": mean("n_dest_zero"),
        LABEL: pc.cast(pc.greater(aggregates.column("n_fraud"), 0), pa.float64()),
    }
    assert list(columns)[1:-1] == list(FEATURE_COLUMNS)
    return pa.table(columns)
