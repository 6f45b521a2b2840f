"""The one-machine baseline without Spark: pandas (pyarrow CSV engine) + a scikit-learn decision tree.

What a data scientist on one machine would write instead of the pipeline: the whole CSV in one
DataFrame, a groupby per customer with the same features as the pipeline (counts, means,
maxima, type fractions, balance errors), a depth-5 ``DecisionTreeClassifier`` on an 80/20 random
split and ROC AUC from predicted probabilities. No versioning, no tracking. Everything is in
memory at once, which is the point of comparing it at ten times the data. It prints one JSON
line with the wall time of each part.

    python benchmarks/baseline_pandas.py --csv data/bench/paysim.csv
"""

from __future__ import annotations

import argparse
import json
import time

TYPES = ("CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER")
DTYPES = {
    "step": "int64",
    "type": "string[pyarrow]",
    "amount": "float64",
    "nameOrig": "string[pyarrow]",
    "oldbalanceOrg": "float64",
    "newbalanceOrig": "float64",
    "nameDest": "string[pyarrow]",
    "oldbalanceDest": "float64",
    "newbalanceDest": "float64",
    "isFraud": "int64",
    "isFlaggedFraud": "int64",
}


def customer_features(df):  # noqa: ANN001, ANN201 - pandas is imported lazily
    """One row per customer: the pipeline's FEATURE_COLUMNS and ``label`` (any fraud)."""
    kind = df["type"]
    derived = df[
        ["nameOrig", "amount", "oldbalanceOrg", "newbalanceOrig", "oldbalanceDest", "newbalanceDest"]
    ]
    derived = derived.assign(
        **{f"is_{t}": (kind == t).astype("float64") for t in TYPES},
        err_orig=df["newbalanceOrig"] + df["amount"] - df["oldbalanceOrg"],
        err_dest=df["oldbalanceDest"] + df["amount"] - df["newbalanceDest"],
        emptied=((df["oldbalanceOrg"] > 0) & (df["newbalanceOrig"] == 0)).astype("float64"),
        dest_zero=(
            kind.isin(["TRANSFER", "CASH_OUT"]) & (df["oldbalanceDest"] == 0) & (df["newbalanceDest"] == 0)
        ).astype("float64"),
        fraud=df["isFraud"],
    )
    grouped = derived.groupby("nameOrig", sort=False)
    return grouped.agg(
        n_tx=("amount", "size"),
        mean_amount=("amount", "mean"),
        max_amount=("amount", "max"),
        mean_oldbalanceOrg=("oldbalanceOrg", "mean"),
        mean_newbalanceOrig=("newbalanceOrig", "mean"),
        mean_oldbalanceDest=("oldbalanceDest", "mean"),
        mean_newbalanceDest=("newbalanceDest", "mean"),
        max_oldbalanceOrg=("oldbalanceOrg", "max"),
        **{f"frac_{t}": (f"is_{t}", "mean") for t in TYPES},
        mean_errorBalanceOrig=("err_orig", "mean"),
        mean_errorBalanceDest=("err_dest", "mean"),
        frac_orig_emptied=("emptied", "mean"),
        frac_dest_zero=("dest_zero", "mean"),
        label=("fraud", "max"),
    )


def run_baseline(csv_path: str, max_depth: int = 5, seed: int = 54321) -> dict[str, float]:
    started = time.monotonic()
    import pandas as pd
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.tree import DecisionTreeClassifier

    df = pd.read_csv(csv_path, engine="pyarrow", dtype=DTYPES)
    read_s = time.monotonic() - started

    t0 = time.monotonic()
    customers = customer_features(df)
    del df
    etl_s = time.monotonic() - t0

    t1 = time.monotonic()
    x = customers.drop(columns="label").to_numpy(dtype="float64")
    y = (customers["label"].to_numpy() > 0).astype("int64")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=12345)
    tree = DecisionTreeClassifier(max_depth=max_depth, random_state=seed).fit(x_train, y_train)
    roc_auc = roc_auc_score(y_test, tree.predict_proba(x_test)[:, 1])
    train_s = time.monotonic() - t1
    return {
        "read_s": round(read_s, 2),
        "etl_s": round(etl_s, 2),
        "train_s": round(train_s, 2),
        "total_s": round(time.monotonic() - started, 2),
        "customers": len(customers),
        "test_roc_auc": round(float(roc_auc), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", required=True)
    parser.add_argument("--max-depth", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(run_baseline(args.csv, args.max_depth)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
