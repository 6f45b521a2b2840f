from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from pachflow.worker import pachyderm_context
from spark_jobs.features import FEATURE_COLUMNS
from spark_jobs.tracking import TrackingUnavailable, check_tracking_server
from spark_jobs.train import TrainConfig, TrainingError, main, train_model

pytestmark = pytest.mark.spark

JOB = "0f2a5b8c9d0e4f1a8b7c6d5e4f3a2b1c"
ETL_COMMIT = "1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def trained(spark, etl_dir: Path, mlflow_server, tmp_path_factory: pytest.TempPathFactory):
    """One training run as the ml_train worker would do it (pachd itself is not reachable)."""
    import mlflow

    env = {
        "PPS_PIPELINE_NAME": "ml_train",
        "PPS_PROJECT_NAME": "default",
        "PACH_JOB_ID": JOB,
        "PACH_OUTPUT_COMMIT_ID": JOB,
        "etl_COMMIT": ETL_COMMIT,
        "PACHD_ADDRESS": f"127.0.0.1:{closed_port()}",
    }
    out = tmp_path_factory.mktemp("pfs") / "out"
    config = TrainConfig(max_depth=4, experiment_name="test_spark_jobs_train")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CTX_DAG_ID", "fraud_detection")
        mp.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__1")
        result = train_model(
            spark, etl_dir, out, config, mlflow_server.tracking_uri, pachyderm_context(["etl"], env)
        )
    # the job leaves no MLflow target behind in the process (tests/conftest unsets it on purpose)
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_EXPERIMENT_ID" not in os.environ
    client = mlflow.MlflowClient(mlflow_server.tracking_uri)
    return result, client, out


def test_run_is_tagged_for_lineage(trained) -> None:
    result, client, _ = trained
    run = client.get_run(result.run_id)
    tags = run.data.tags
    assert tags["pachyderm.pipeline"] == "ml_train"
    assert tags["pachyderm.job"] == tags["pachyderm.commit"] == JOB
    assert tags["pachyderm.provenance.etl"] == ETL_COMMIT
    assert tags["pachyderm.address"].startswith("127.0.0.1:")
    assert (tags["airflow.dag_id"], tags["airflow.run_id"]) == ("fraud_detection", "manual__1")
    assert run.info.run_name == f"ml_train@{JOB}"
    assert run.data.params["max_depth"] == "4" and run.data.params["class_weighting"] == "balanced"


def test_input_dataset_points_at_the_pachyderm_commit(trained) -> None:
    result, client, _ = trained
    (dataset_input,) = client.get_run(result.run_id).inputs.dataset_inputs
    ds = dataset_input.dataset
    assert ds.source_type == "pachyderm" and ds.digest == ETL_COMMIT and ds.name == "etl"
    assert json.loads(ds.source)["uri"].endswith(f"/default/etl@{ETL_COMMIT}")
    found = client.search_runs([result.experiment_id], filter_string=f"dataset.digest = '{ETL_COMMIT}'")
    assert [r.info.run_id for r in found] == [result.run_id]


def test_metrics_come_from_probabilities(trained) -> None:
    result, client, _ = trained
    m = client.get_run(result.run_id).data.metrics
    for key in ("test_roc_auc", "test_pr_auc", "test_precision", "test_recall", "test_f1"):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["test_tp"] + m["test_fn"] == m["test_positives"]
    assert m["test_tn"] + m["test_fp"] + m["test_tp"] + m["test_fn"] == m["test_rows"]
    # the generated data has a real signal; a probability-based AUC sees it
    assert m["test_roc_auc"] > 0.85
    # stratified: the test set holds 20% of the fraud customers, to the customer
    assert m["test_positives"] == round(m["fraud_customers"] * 0.2)


def test_logged_model_loads_back_and_predicts(trained, spark, mlflow_server, monkeypatch) -> None:
    import mlflow

    result, client, _ = trained
    logged = client.get_logged_model(result.model_id)
    assert logged.source_run_id == result.run_id and str(logged.status) == "READY"
    assert logged.tags["pachyderm.commit"] == JOB
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.tracking_uri)
    model = mlflow.spark.load_model(result.model_uri)
    rows = spark.createDataFrame(
        [tuple(float(i + 1) for i, _ in enumerate(FEATURE_COLUMNS))], list(FEATURE_COLUMNS)
    )
    (prediction,) = model.transform(rows).select("prediction", "probability").collect()
    assert prediction["prediction"] in (0.0, 1.0) and sum(prediction["probability"]) == pytest.approx(1.0)
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert artifacts == {
        f"plots/{n}.png" for n in ("roc_curve", "pr_curve", "confusion_matrix", "feature_importances")
    }


def test_run_id_is_written_into_the_output(trained) -> None:
    result, _, out = trained
    assert (out / result.run_id).is_file() and (out / result.run_id).stat().st_size == 0
    record = json.loads((out / "mlflow_run.json").read_text())
    assert record["run_id"] == result.run_id and record["model_uri"] == f"models:/{result.model_id}"
    assert record["experiment_id"] == result.experiment_id and record["metrics"]["test_roc_auc"] > 0.85


def test_unreachable_mlflow_fails_fast_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable, match=rf"MLflow at {uri} is unreachable"):
        check_tracking_server(uri, "x")
    assert main(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "--tracking-uri", uri]) == 1
    assert f"MLflow at {uri} is unreachable" in capsys.readouterr().err
    assert time.monotonic() - started < 15  # generous: the point is "no multi-minute retry loop"
    with pytest.raises(TrackingUnavailable, match="MLFLOW_TRACKING_URI is not set"):
        check_tracking_server(None, "x")


def test_empty_input_is_a_clear_error(spark, mlflow_server, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no Parquet files"):
        train_model(spark, tmp_path, tmp_path / "out", TrainConfig(), mlflow_server.tracking_uri)


def test_the_module_exits_with_mains_code(tmp_path: Path) -> None:
    """``python -m spark_jobs.train`` (what a pipeline runs) returns main's exit code."""
    import subprocess
    import sys

    uri = f"http://127.0.0.1:{closed_port()}"
    cmd = [
        sys.executable,
        "-m",
        "spark_jobs.train",
        "--input",
        str(tmp_path),
        "--output",
        str(tmp_path / "o"),
    ]
    done = subprocess.run(
        [*cmd, "--tracking-uri", uri],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"MLflow at {uri} is unreachable" in done.stderr
