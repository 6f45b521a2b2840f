"""Pipeline ``ml_train``: a Spark MLlib decision tree on per-customer features, tracked in MLflow.

Reads the ``etl`` output (partial aggregates, merged per customer here), splits customers
with a seeded split stratified by label, subsamples the training negatives (default 20 per
fraud customer; the test set keeps everyone), weights the classes to counter the fraud rate,
fits ``VectorAssembler + DecisionTreeClassifier`` and evaluates from probabilities (ROC AUC,
PR AUC, precision/recall/F1 at the chosen threshold, confusion matrix). Logs params,
metrics, PNG plots, the model as an MLflow 3 LoggedModel and the input dataset
(``pachyderm://…@<commit>``, digest = commit id); ``pachflow.worker.pachyderm_run`` tags the
run per the lineage contract and writes ``<run_id>`` plus ``mlflow_run.json`` into the output.

Memory and time (benchmarks/full_pipeline.py): the etl output is turned into training and test
sets one bucket at a time (spark_jobs/training_data.py) while the JVM starts in a thread, so
this process never holds every customer; Spark MLlib reads the training set from Parquet and
the fitted tree scores the test and training rows in numpy batches (spark_jobs/tree_scoring.py).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pachflow.worker import PachydermContext, pachyderm_context, pachyderm_run
from spark_jobs.features import FEATURE_COLUMNS, LABEL
from spark_jobs.tracking import (
    TrackingUnavailable,
    check_tracking_server,
    limit_http_retries,
    log_spark_logged_model,
    training_dataset,
)
from spark_jobs.training_data import TrainingError, input_files, iter_rows, prepare_training_data
from spark_jobs.tree_scoring import TreeArrays, score_tables
from spark_jobs.worker_env import setting

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("pachflow.train")

DEFAULT_EXPERIMENT = "fraud_detection"
WEIGHT = "weight"
# The training JVM lives seconds: code compiled by C1 alone is ready sooner, and C2's faster code
# rarely pays back its compile time here (the whole job: 20-35 % less wall time at full size, the
# same model). SPARK_DRIVER_JAVA_OPTIONS=-XX:TieredStopAtLevel=4 restores HotSpot's default.
TRAIN_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"


@dataclass(frozen=True)
class TrainConfig:
    max_depth: int = 5
    max_bins: int = 32
    min_instances_per_node: int = 1
    min_info_gain: float = 0.0
    impurity: str = "gini"
    seed: int = 54321
    test_fraction: float = 0.2
    negatives_per_positive: int = 20
    threshold: float = 0.5
    experiment_name: str = DEFAULT_EXPERIMENT
    model_name: str = "fraud-detector"
    input_name: str = "etl"


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    experiment_name: str
    tracking_uri: str
    model_id: str
    model_uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def fit(train: DataFrame, config: TrainConfig, class_counts: dict[str, int]) -> PipelineModel:
    """VectorAssembler + DecisionTreeClassifier with balanced class weights."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import DecisionTreeClassifier
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    n_pos, n_neg = class_counts["train_positives"], class_counts["train_negatives"]
    total = n_pos + n_neg
    w_pos, w_neg = total / (2.0 * n_pos), total / (2.0 * n_neg)
    # Declaring the label binary saves the extra pass Spark makes to find the number of classes.
    binary = {"ml_attr": {"type": "nominal", "num_vals": 2, "name": LABEL}}
    weighted = train.withColumn(WEIGHT, F.when(F.col(LABEL) == 1, w_pos).otherwise(w_neg)).withColumn(
        LABEL, F.col(LABEL).alias(LABEL, metadata=binary)
    )
    tree = DecisionTreeClassifier(
        featuresCol="features",
        labelCol=LABEL,
        weightCol=WEIGHT,
        maxDepth=config.max_depth,
        maxBins=config.max_bins,
        minInstancesPerNode=config.min_instances_per_node,
        minInfoGain=config.min_info_gain,
        impurity=config.impurity,
        seed=config.seed,
    )
    assembler = VectorAssembler(inputCols=list(FEATURE_COLUMNS), outputCol="features")
    return Pipeline(stages=[assembler, tree]).fit(weighted)


def _signature() -> Any:
    """Model signature: the feature columns in, a 0/1 ``prediction`` out (no extra Spark job)."""
    import pandas as pd
    from mlflow.models import infer_signature

    sample = pd.DataFrame({c: [0.0] for c in FEATURE_COLUMNS})
    return infer_signature(sample, pd.DataFrame({"prediction": [0.0]}))


def _feature_schema() -> Any:
    from mlflow.types import ColSpec, Schema

    return Schema([ColSpec("double", c) for c in FEATURE_COLUMNS] + [ColSpec("double", LABEL)])


def train_model(
    spark: SparkSession | Callable[[], SparkSession],
    input_root: Path,
    output_dir: Path,
    config: TrainConfig,
    tracking_uri: str,
    ctx: PachydermContext | None = None,
) -> TrainResult:
    """Train, evaluate and log one run; writes the run record into ``output_dir``.

    ``spark`` may be a callable returning the session, so that the JVM starts while the input
    is read and split (see main).
    """
    import mlflow

    from spark_jobs.evaluation import evaluate, write_plots

    ctx = ctx or pachyderm_context([config.input_name])
    limit_http_retries()
    check_tracking_server(tracking_uri, config.experiment_name)
    files = input_files(input_root)
    run_name = None if ctx.in_pipeline else f"train@local-{time.strftime('%Y%m%dT%H%M%S')}"
    started = time.monotonic()
    with pachyderm_run(
        config.experiment_name,
        run_name=run_name,
        output_dir=output_dir,
        tracking_uri=tracking_uri,
        context=ctx,
    ) as run:
        tags = {k: v for k, v in run.data.tags.items() if k.startswith(("pachyderm.", "airflow."))}
        params = {k: str(v) for k, v in asdict(config).items() if k not in ("experiment_name", "input_name")}
        params.update(
            class_weighting="balanced", features=",".join(FEATURE_COLUMNS), input_files=str(len(files))
        )
        mlflow.log_params(params)

        prepared = prepare_training_data(
            files, config.seed, config.test_fraction, config.negatives_per_positive
        )
        counts = prepared.counts
        log.info(
            "%s customers (%s fraud) from %d file(s); training on %s fraud + %s legit (%.1fs)",
            f"{counts['positives'] + counts['negatives']:,}",
            f"{counts['positives']:,}",
            len(files),
            f"{counts['train_positives']:,}",
            f"{counts['train_negatives']:,}",
            time.monotonic() - started,
        )
        dataset = training_dataset(ctx, config.input_name, input_root, files, _feature_schema())
        mlflow.log_input(dataset, context="training")

        session = spark() if callable(spark) else spark
        train_frame = session.read.parquet(str(prepared.train_path)).cache()
        model = fit(train_frame, config, counts)
        log.info("fitted depth-%d tree in %.1fs total", config.max_depth, time.monotonic() - started)
        tree = model.stages[-1]
        nodes = TreeArrays.from_spark(tree)
        y_test, p_test = score_tables(nodes, iter_rows(prepared.test_path), FEATURE_COLUMNS, LABEL)
        # Train metrics are an overfitting check (ROC AUC is comparable with test; precision is
        # not when negatives were subsampled).
        y_train, p_train = score_tables(nodes, iter_rows(prepared.train_path), FEATURE_COLUMNS, LABEL)
        evaluation = evaluate(y_test, p_test, config.threshold, "test")
        metrics = {**evaluation.metrics, **evaluate(y_train, p_train, config.threshold, "train").metrics}
        importances = dict(zip(FEATURE_COLUMNS, tree.featureImportances.toArray().tolist(), strict=True))
        metrics.update(
            tree_depth=float(tree.depth),
            tree_nodes=float(tree.numNodes),
            customers=float(counts["positives"] + counts["negatives"]),
            fraud_customers=float(counts["positives"]),
            train_fit_rows=float(counts["train_positives"] + counts["train_negatives"]),
        )

        model_id, model_uri = log_spark_logged_model(model, config.model_name, tags, params, _signature())
        mlflow.log_metrics(metrics, model_id=model_id, dataset=dataset)
        mlflow.log_dict(importances, "feature_importances.json")
        with tempfile.TemporaryDirectory(prefix="pachflow-plots-") as tmp:
            write_plots(y_test, p_test, evaluation, importances, config.threshold, Path(tmp))
            mlflow.log_artifacts(tmp, artifact_path="plots")
        train_frame.unpersist()
        prepared.close()
        result = TrainResult(
            run_id=run.info.run_id,
            experiment_id=run.info.experiment_id,
            experiment_name=config.experiment_name,
            tracking_uri=tracking_uri,
            model_id=model_id,
            model_uri=model_uri,
            metrics=metrics,
            tags=tags,
        )
    log.info(
        "run %s: test ROC AUC %.4f, PR AUC %.4f, F1 %.4f at %.2f; model %s (%.1fs)",
        result.run_id,
        metrics["test_roc_auc"],
        metrics["test_pr_auc"],
        metrics["test_f1"],
        config.threshold,
        model_uri,
        time.monotonic() - started,
    )
    return result


def _import_heavy_modules() -> None:
    """MLflow's Spark flavour, sklearn and matplotlib take seconds to import: done while the JVM starts."""
    import matplotlib.pyplot  # noqa: F401
    import mlflow.spark  # noqa: F401
    import sklearn.metrics  # noqa: F401


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spark_jobs.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="etl output (e.g. /pfs/etl)")
    parser.add_argument("--output", type=Path, required=True, help="output directory (e.g. /pfs/out)")
    parser.add_argument(
        "--input-name", default=None, help="Pachyderm input/repo name (default: --input's basename)"
    )
    parser.add_argument("--max-depth", type=int, default=int(setting("MAX_DEPTH", "5")))
    parser.add_argument("--max-bins", type=int, default=int(setting("MAX_BINS", "32")))
    parser.add_argument(
        "--min-instances-per-node", type=int, default=int(setting("MIN_INSTANCES_PER_NODE", "1"))
    )
    parser.add_argument("--seed", type=int, default=int(setting("SEED", "54321")))
    parser.add_argument("--test-fraction", type=float, default=float(setting("TEST_FRACTION", "0.2")))
    parser.add_argument(
        "--negatives-per-positive",
        type=int,
        default=int(setting("NEGATIVES_PER_POSITIVE", "20")),
        help="subsample training negatives to this many per fraud customer (0: all); test keeps all",
    )
    parser.add_argument("--threshold", type=float, default=float(setting("DECISION_THRESHOLD", "0.5")))
    parser.add_argument("--experiment", default=setting("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT))
    parser.add_argument("--model-name", default=setting("MLFLOW_MODEL_NAME", "fraud-detector"))
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not 0.0 < args.test_fraction < 1.0 or not 0.0 <= args.threshold <= 1.0 or args.max_depth < 1:
        print("ml_train: need 0 < test-fraction < 1, 0 <= threshold <= 1 and max-depth >= 1", file=sys.stderr)
        return 2
    config = TrainConfig(
        max_depth=args.max_depth,
        max_bins=args.max_bins,
        min_instances_per_node=args.min_instances_per_node,
        seed=args.seed,
        test_fraction=args.test_fraction,
        negatives_per_positive=args.negatives_per_positive,
        threshold=args.threshold,
        experiment_name=args.experiment,
        model_name=args.model_name,
        input_name=args.input_name or args.input.name,
    )
    try:  # fail in seconds, before starting a JVM, if MLflow is not there
        limit_http_retries()
        check_tracking_server(args.tracking_uri, config.experiment_name)
    except TrackingUnavailable as exc:
        print(f"ml_train failed: {exc}", file=sys.stderr)
        return 1
    from concurrent.futures import ThreadPoolExecutor

    from spark_jobs.spark_session import build_session

    # Launching Spark mostly waits on the java process: the Python imports and reading and
    # splitting the input run meanwhile, and train_model asks for the session only to fit.
    with ThreadPoolExecutor(max_workers=1) as pool:
        session = pool.submit(build_session, "pachflow-train", java_options=TRAIN_JAVA_OPTIONS)
        try:
            _import_heavy_modules()
            train_model(session.result, args.input, args.output, config, args.tracking_uri)
        except (TrainingError, TrackingUnavailable) as exc:
            print(f"ml_train failed: {exc}", file=sys.stderr)
            return 1
        finally:
            if session.exception() is None:  # waits for a start still in progress, then stops it
                session.result().stop()
    return 0


if __name__ == "__main__":
    code = main()
    # The job is done: spare the interpreter's final garbage collection over MLflow's, PySpark's and
    # scikit-learn's objects (0.8-2.4 s of the job's wall time on a loaded 2-core machine).
    gc.freeze()
    raise SystemExit(code)
