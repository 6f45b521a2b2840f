from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from spark_jobs.etl import (
    DatumError,
    LazySpark,
    aggregate_datum,
    arrow_below_rows,
    datums_under,
    output_path_for,
    run_directory,
)
from spark_jobs.features import (
    FEATURE_COLUMNS,
    LABEL,
    MERGE,
    customer_features,
    customer_features_arrow,
    merge_partials,
    merge_partials_arrow,
)
from spark_jobs.schema import ARROW_SCHEMA

pytestmark = pytest.mark.spark


def pandas_customers(raw_dir: Path) -> pd.DataFrame:
    """Per-customer features computed straight from the raw CSVs with pandas (no Spark)."""
    df = pd.concat(
        pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(column_types=ARROW_SCHEMA)).to_pandas()
        for f in sorted(raw_dir.glob("*.csv"))
    )
    df["err_orig"] = df["newbalanceOrig"] + df["amount"] - df["oldbalanceOrg"]
    df["err_dest"] = df["oldbalanceDest"] + df["amount"] - df["newbalanceDest"]
    df["emptied"] = ((df["oldbalanceOrg"] > 0) & (df["newbalanceOrig"] == 0)).astype(float)
    df["dest_zero"] = (
        df["type"].isin(["TRANSFER", "CASH_OUT"]) & (df["oldbalanceDest"] == 0) & (df["newbalanceDest"] == 0)
    ).astype(float)
    for t in ("CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER"):
        df[f"is_{t}"] = (df["type"] == t).astype(float)
    g = df.groupby("nameOrig")
    out = pd.DataFrame(
        {
            "n_tx": g.size().astype(float),
            "mean_amount": g["amount"].mean(),
            "max_amount": g["amount"].max(),
            "mean_oldbalanceOrg": g["oldbalanceOrg"].mean(),
            "mean_newbalanceOrig": g["newbalanceOrig"].mean(),
            "mean_oldbalanceDest": g["oldbalanceDest"].mean(),
            "mean_newbalanceDest": g["newbalanceDest"].mean(),
            "max_oldbalanceOrg": g["oldbalanceOrg"].max(),
            **{
                f"frac_{t}": g[f"is_{t}"].mean()
                for t in ("CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER")
            },
            "mean_errorBalanceOrig": g["err_orig"].mean(),
            "mean_errorBalanceDest": g["err_dest"].mean(),
            "frac_orig_emptied": g["emptied"].mean(),
            "frac_dest_zero": g["dest_zero"].mean(),
            LABEL: (g["isFraud"].max() > 0).astype(float),
        }
    )
    return out.sort_index()


def test_one_output_per_bucket_file_and_no_rejects_input(etl_dir: Path, split_dir: Path) -> None:
    (split_dir / "rejects").mkdir(exist_ok=True)
    (split_dir / "rejects" / "x.csv").write_text("line,reason,row\n")
    datums = datums_under(split_dir)
    assert all(d.parent.name.startswith("bucket-") for d in datums)
    produced = sorted(p.relative_to(etl_dir) for p in etl_dir.glob("bucket-*/*.parquet"))
    assert produced == sorted(d.relative_to(split_dir) for d in datums)
    assert len(produced) == 8  # 4 buckets x 2 daily files


def test_aggregates_match_independent_pandas(spark, etl_dir: Path, raw_dir: Path) -> None:
    partials = spark.read.parquet(str(etl_dir / "bucket-*" / "*.parquet"))
    assert set(MERGE) <= set(partials.columns)
    got = customer_features(merge_partials(partials)).toPandas().set_index("nameOrig").sort_index()
    expected = pandas_customers(raw_dir)
    assert list(got.index) == list(expected.index)
    for column in (*FEATURE_COLUMNS, LABEL):
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-9, atol=1e-6, err_msg=column)
    assert got[LABEL].sum() > 50  # the test data really has fraud customers


def test_arrow_features_match_independent_pandas(etl_dir: Path, raw_dir: Path) -> None:
    """The pyarrow merge + features that training uses give the same numbers as pandas."""
    partials = pq.read_table(sorted(str(p) for p in etl_dir.glob("bucket-*/*.parquet")))
    got = (
        customer_features_arrow(merge_partials_arrow(partials)).to_pandas().set_index("nameOrig").sort_index()
    )
    expected = pandas_customers(raw_dir)
    assert list(got.index) == list(expected.index)
    for column in (*FEATURE_COLUMNS, LABEL):
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-9, atol=1e-6, err_msg=column)


def test_partials_of_one_file_are_per_customer(etl_dir: Path) -> None:
    table = pq.read_table(next(etl_dir.glob("bucket-*/paysim-day-01.parquet")))
    names = table.column("nameOrig").to_pylist()
    assert len(names) == len(set(names)) > 0


def test_directory_datum_and_missing_data(spark, split_dir: Path, tmp_path: Path) -> None:
    bucket = split_dir / "bucket-01"
    target = aggregate_datum(spark, bucket, split_dir, tmp_path)
    assert (
        target
        == output_path_for(bucket, split_dir, tmp_path)
        == tmp_path / "bucket-01" / "aggregates.parquet"
    )
    assert pq.read_metadata(target).num_rows > 0
    empty = tmp_path / "in" / "bucket-09"
    empty.mkdir(parents=True)
    with pytest.raises(DatumError, match="bucket-09: no Parquet file"):
        aggregate_datum(spark, empty, tmp_path / "in", tmp_path / "out")
    with pytest.raises(DatumError, match="no bucket-"):
        run_directory(spark, tmp_path / "in2", tmp_path / "out")


def test_opt_in_arrow_path_matches_spark_and_starts_no_jvm(
    spark, split_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datum = next(iter(datums_under(split_dir)))
    by_spark = pq.read_table(aggregate_datum(spark, datum, split_dir, tmp_path / "spark"))

    def no_jvm():
        raise AssertionError("small datums must not start Spark when ETL_ARROW_BELOW_ROWS covers them")

    monkeypatch.setenv("ETL_ARROW_BELOW_ROWS", "1000000")
    outputs = run_directory(LazySpark(no_jvm), split_dir, tmp_path / "arrow")
    by_arrow = pq.read_table(
        next(p for p in outputs if p.name == datum.name and p.parent.name == datum.parent.name)
    )
    assert by_arrow.schema.names == by_spark.schema.names and by_arrow.schema.types == by_spark.schema.types
    a = by_arrow.to_pandas().set_index("nameOrig").sort_index()
    s = by_spark.to_pandas().set_index("nameOrig").sort_index()
    assert list(a.index) == list(s.index)
    for column in MERGE:
        np.testing.assert_allclose(a[column], s[column], rtol=1e-12, err_msg=column)
    # and above the threshold Spark is used again
    monkeypatch.setenv("ETL_ARROW_BELOW_ROWS", "1")
    with pytest.raises(DatumError, match="must not start Spark"):
        aggregate_datum(LazySpark(no_jvm), datum, split_dir, tmp_path / "x", arrow_below_rows())


def test_arrow_engine_equals_spark_engine_and_starts_no_jvm(
    spark, split_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ETL_ENGINE=arrow (what pachyderm_specs/etl.json selects) gives the spark engine's tables."""

    def no_jvm():
        raise AssertionError("ETL_ENGINE=arrow must not start Spark")

    monkeypatch.delenv("ETL_ARROW_BELOW_ROWS", raising=False)
    monkeypatch.setenv("ETL_ENGINE", "spark")
    by_spark = run_directory(LazySpark.of(spark), split_dir, tmp_path / "spark")
    monkeypatch.setenv("ETL_ENGINE", "arrow")
    by_arrow = run_directory(LazySpark(no_jvm), split_dir, tmp_path / "arrow")
    assert [p.relative_to(tmp_path / "arrow") for p in by_arrow] == [
        p.relative_to(tmp_path / "spark") for p in by_spark
    ]
    for s_path, a_path in zip(by_spark, by_arrow, strict=True):
        s_table, a_table = pq.read_table(s_path), pq.read_table(a_path)
        assert a_table.schema.names == s_table.schema.names and a_table.schema.types == s_table.schema.types
        a = a_table.to_pandas().set_index("nameOrig").sort_index()
        s = s_table.to_pandas().set_index("nameOrig").sort_index()
        assert list(a.index) == list(s.index)
        for column in MERGE:
            np.testing.assert_allclose(a[column], s[column], rtol=1e-12, err_msg=f"{a_path}: {column}")


def test_unknown_etl_engine_is_a_clear_error(split_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ETL_ENGINE", "duckdb")
    with pytest.raises(DatumError, match="ETL_ENGINE='duckdb' is not one of spark, arrow"):
        run_directory(LazySpark(lambda: None), split_dir, tmp_path)
