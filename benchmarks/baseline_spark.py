"""The plain single-script PySpark baseline: read CSV -> per-customer aggregates -> tree -> ROC AUC.

What a data scientist would write without the pipeline: one SparkSession with default
settings, the CSV read with its schema, a groupBy per customer with the same aggregates as
the pipeline's ETL, a depth-5 decision tree on an 80/20 random split and ROC AUC from
probabilities. It prints one JSON line with the wall time of each part.

    python benchmarks/baseline_spark.py --csv data/bench/paysim.csv
"""

from __future__ import annotations

import argparse
import json
import time

SCHEMA = (
    "step LONG, type STRING, amount DOUBLE, nameOrig STRING, oldbalanceOrg DOUBLE, newbalanceOrig DOUBLE, "
    "nameDest STRING, oldbalanceDest DOUBLE, newbalanceDest DOUBLE, isFraud LONG, isFlaggedFraud LONG"
)
TYPES = ("CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER")


def run_baseline(csv_path: str, max_depth: int = 5, seed: int = 54321) -> dict[str, float]:
    started = time.monotonic()
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import DecisionTreeClassifier
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.appName("baseline").master("local[*]").getOrCreate()
    session_s = time.monotonic() - started

    t0 = time.monotonic()
    df = spark.read.csv(csv_path, header=True, schema=SCHEMA)
    amount = F.col("amount")
    customers = df.groupBy("nameOrig").agg(
        F.count(F.lit(1)).cast("double").alias("n_tx"),
        F.avg(amount).alias("mean_amount"),
        F.max(amount).alias("max_amount"),
        F.avg("oldbalanceOrg").alias("mean_oldbalanceOrg"),
        F.avg("newbalanceOrig").alias("mean_newbalanceOrig"),
        F.avg("oldbalanceDest").alias("mean_oldbalanceDest"),
        F.avg("newbalanceDest").alias("mean_newbalanceDest"),
        F.max("oldbalanceOrg").alias("max_oldbalanceOrg"),
        *[F.avg(F.when(F.col("type") == t, 1.0).otherwise(0.0)).alias(f"frac_{t}") for t in TYPES],
        F.avg(F.col("newbalanceOrig") + amount - F.col("oldbalanceOrg")).alias("mean_errorBalanceOrig"),
        F.avg(F.col("oldbalanceDest") + amount - F.col("newbalanceDest")).alias("mean_errorBalanceDest"),
        F.avg(
            F.when((F.col("oldbalanceOrg") > 0) & (F.col("newbalanceOrig") == 0), 1.0).otherwise(0.0)
        ).alias("frac_orig_emptied"),
        F.avg(
            F.when(
                F.col("type").isin("TRANSFER", "CASH_OUT")
                & (F.col("oldbalanceDest") == 0)
                & (F.col("newbalanceDest") == 0),
                1.0,
            ).otherwise(0.0)
        ).alias("frac_dest_zero"),
        (F.max("isFraud") > 0).cast("double").alias("label"),
    )
    customers = customers.cache()
    n_customers = customers.count()
    etl_s = time.monotonic() - t0

    t1 = time.monotonic()
    features = [c for c in customers.columns if c not in ("nameOrig", "label")]
    train, test = customers.randomSplit([0.8, 0.2], seed=12345)
    tree = DecisionTreeClassifier(labelCol="label", featuresCol="features", maxDepth=max_depth, seed=seed)
    model = Pipeline(stages=[VectorAssembler(inputCols=features, outputCol="features"), tree]).fit(train)
    evaluator = BinaryClassificationEvaluator(labelCol="label", rawPredictionCol="probability")
    roc_auc = evaluator.evaluate(model.transform(test))
    train_s = time.monotonic() - t1
    spark.stop()
    return {
        "session_s": round(session_s, 2),
        "etl_s": round(etl_s, 2),
        "train_s": round(train_s, 2),
        "total_s": round(time.monotonic() - started, 2),
        "customers": n_customers,
        "test_roc_auc": round(roc_auc, 4),
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
