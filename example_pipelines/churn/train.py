"""Pipeline ``churn_model``: a scikit-learn churn classifier on all ``features``, tracked in MLflow.

Reads every ``*.csv`` of the features repo (glob ``/``: one datum, retrained on each change),
keeps a fixed share of customers for testing (chosen by a hash of the customer id, so a
customer stays on the same side as days are added), fits ``StandardScaler + LogisticRegression``
and evaluates from probabilities: ROC AUC, PR AUC, log loss, and accuracy / precision / recall /
F1 at ``DECISION_THRESHOLD``. Everything is logged inside ``pachflow.worker.pachyderm_run``, which
names and tags the run for lineage and writes ``<run_id>`` and ``mlflow_run.json`` to the output.

``python3 -m example_pipelines.churn.train --input /pfs/features --output /pfs/out``; the
hyper-parameters come from ``transform.env`` (``LOGREG_C``, ``MAX_ITER``, ``TEST_FRACTION``,
``DECISION_THRESHOLD``, ``MLFLOW_EXPERIMENT_NAME``) or the matching options.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from example_pipelines.churn import FEATURE_COLUMNS, KEY, LABEL

log = logging.getLogger("example_pipelines.churn.train")

MODEL_NAME = "model"  # the logged model's name in the run (model URI runs:/<run>/model, models:/<id>)


class TrainingError(ValueError):
    """The input cannot be trained on (the message names the path or the problem)."""


@dataclass(frozen=True)
class TrainConfig:
    logreg_c: float = 1.0
    max_iter: int = 200
    test_fraction: float = 0.25
    decision_threshold: float = 0.5
    seed: int = 7

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise TrainingError(f"TEST_FRACTION must be between 0 and 1, got {self.test_fraction}")
        if not 0 <= self.decision_threshold <= 1:
            raise TrainingError(f"DECISION_THRESHOLD must be within [0, 1], got {self.decision_threshold}")
        if self.logreg_c <= 0:
            raise TrainingError(f"LOGREG_C must be positive, got {self.logreg_c}")


def load_features(input_dir: Path) -> pd.DataFrame:
    """All feature files under ``input_dir`` as one frame (one row per customer)."""
    files = sorted(p for p in input_dir.rglob("*.csv") if not p.name.startswith("."))
    if not files:
        raise TrainingError(f"{input_dir}: no feature files (*.csv); is this the features output?")
    frames = []
    for path in files:
        frame = pd.read_csv(path, dtype={KEY: str})
        missing = [c for c in (KEY, *FEATURE_COLUMNS, LABEL) if c not in frame.columns]
        if missing:
            raise TrainingError(f"{path}: missing column(s) {missing}")
        frames.append(frame)
    features = pd.concat(frames, ignore_index=True)
    duplicated = features[KEY].duplicated()
    if duplicated.any():
        raise TrainingError(f"{input_dir}: {KEY} {features[KEY][duplicated].iloc[0]!r} appears in two files")
    return features


def test_mask(ids: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """True for the customers held out for testing: a hash of (seed, id), stable across runs."""
    scale = float(2**32)
    return np.array([zlib.crc32(f"{seed}:{i}".encode()) / scale < fraction for i in ids], dtype=bool)


def fit(train: pd.DataFrame, config: TrainConfig) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if train[LABEL].nunique() < 2:
        raise TrainingError(f"the training rows have only one class of {LABEL!r}; need both")
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=config.logreg_c, max_iter=config.max_iter, random_state=config.seed),
    )
    return model.fit(train[list(FEATURE_COLUMNS)], train[LABEL])


def evaluate(model: Any, test: pd.DataFrame, threshold: float) -> dict[str, float]:
    """Metrics from the positive-class probability on ``test``."""
    from sklearn import metrics

    y = test[LABEL].to_numpy()
    if len(np.unique(y)) < 2:
        raise TrainingError(f"the test rows have only one class of {LABEL!r}; ROC AUC is undefined")
    proba = model.predict_proba(test[list(FEATURE_COLUMNS)])[:, 1]
    predicted = (proba >= threshold).astype(int)
    return {
        "roc_auc": float(metrics.roc_auc_score(y, proba)),
        "pr_auc": float(metrics.average_precision_score(y, proba)),
        "log_loss": float(metrics.log_loss(y, proba, labels=[0, 1])),
        "accuracy": float(metrics.accuracy_score(y, predicted)),
        "precision": float(metrics.precision_score(y, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(y, predicted, zero_division=0)),
        "f1": float(metrics.f1_score(y, predicted, zero_division=0)),
    }


def train(features: pd.DataFrame, config: TrainConfig) -> tuple[Any, dict[str, float]]:
    """Split, fit and evaluate; returns the fitted model and its metrics (with row counts)."""
    held_out = test_mask(features[KEY], config.test_fraction, config.seed)
    train_rows, test_rows = features[~held_out], features[held_out]
    model = fit(train_rows, config)
    scores = evaluate(model, test_rows, config.decision_threshold)
    scores.update(
        rows_train=float(len(train_rows)),
        rows_test=float(len(test_rows)),
        churn_rate=float(features[LABEL].mean()),
    )
    return model, scores


def log_model(model: Any, features: pd.DataFrame) -> str:
    """Log the fitted model to the active run; returns its model URI."""
    import mlflow
    import sklearn
    from mlflow.models import infer_signature

    sample = features[list(FEATURE_COLUMNS)].head(50)
    info = mlflow.sklearn.log_model(
        model,
        name=MODEL_NAME,
        signature=infer_signature(sample, model.predict_proba(sample)[:, 1]),
        # Explicit requirements: MLflow's inference would load the model in a subprocess.
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}"],
        serialization_format="cloudpickle",
    )
    return info.model_uri


def log_training_input(features: pd.DataFrame, input_name: str) -> None:
    """Log the features as the run's training dataset, ``pachyderm://…/<input>@<commit>``.

    Only inside a pipeline: outside one there is no commit to name, and nothing is logged.
    """
    import mlflow

    from pachflow.mlflow_source import PachydermDatasetSource
    from pachflow.worker import pachyderm_context

    ctx = pachyderm_context([input_name])
    commit = ctx.input_commits.get(input_name, "")
    if not (commit and ctx.address):
        return
    source = PachydermDatasetSource(ctx.address, ctx.project, input_name, commit)
    dataset = mlflow.data.from_pandas(features, source=source, targets=LABEL, name=input_name, digest=commit)
    mlflow.log_input(dataset, context="training")


def _env(name: str, default: Any) -> Any:
    """``transform.env`` setting ``name`` as the type of ``default``; blank = ``default``."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return type(default)(value)
    except ValueError:
        raise TrainingError(f"{name}={value!r} is not a valid {type(default).__name__}") from None


def build_parser() -> argparse.ArgumentParser:
    """Options; their defaults come from the environment (``transform.env``), then TrainConfig."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="features folder, e.g. /pfs/features")
    parser.add_argument("--output", type=Path, required=True, help="output folder, e.g. /pfs/out")
    parser.add_argument("--experiment", default=os.environ.get("MLFLOW_EXPERIMENT_NAME") or None)
    parser.add_argument("--logreg-c", type=float, default=_env("LOGREG_C", defaults.logreg_c))
    parser.add_argument("--max-iter", type=int, default=_env("MAX_ITER", defaults.max_iter))
    parser.add_argument("--test-fraction", type=float, default=_env("TEST_FRACTION", defaults.test_fraction))
    parser.add_argument(
        "--decision-threshold", type=float, default=_env("DECISION_THRESHOLD", defaults.decision_threshold)
    )
    parser.add_argument("--seed", type=int, default=_env("SPLIT_SEED", defaults.seed))
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    try:
        args = build_parser().parse_args(argv)
        config = TrainConfig(
            logreg_c=args.logreg_c,
            max_iter=args.max_iter,
            test_fraction=args.test_fraction,
            decision_threshold=args.decision_threshold,
            seed=args.seed,
        )
        features = load_features(args.input)
    except ValueError as exc:  # a TrainingError, or a CSV pandas cannot parse
        log.error("%s", exc)
        return 1
    import mlflow

    from pachflow.worker import pachyderm_run

    try:
        with pachyderm_run(args.experiment, output_dir=str(args.output)) as run:
            mlflow.log_params({**asdict(config), "model": "StandardScaler+LogisticRegression"})
            log_training_input(features, args.input.name)
            model, scores = train(features, config)
            mlflow.log_metrics(scores)
            model_uri = log_model(model, features)
    except TrainingError as exc:  # the run is ended as failed by pachyderm_run
        log.error("%s", exc)
        return 1
    log.info("run %s: %s; model %s", run.info.run_id, scores, model_uri)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
