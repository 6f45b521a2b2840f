"""MLflow's console messages reach a task's log as INFO lines, not as stderr (which Airflow shows as ERROR)."""

from __future__ import annotations

import contextlib
import logging

from pachflow.hooks.mlflow import MLflowHook
from tests.fixtures.airflow import airflow_connections, mlflow_conn


def test_register_model_messages_are_logged_at_info(mlflow_server, capfd, caplog):
    import mlflow
    from mlflow.exceptions import MlflowException

    with airflow_connections(mlflow_default=mlflow_conn(mlflow_server.tracking_uri)):
        client = MLflowHook().get_conn()
    run = client.create_run(client.create_experiment("mlflow-messages-check"))
    mlflow.set_tracking_uri(mlflow_server.tracking_uri)
    try:
        with caplog.at_level(logging.INFO, logger="mlflow"):
            for _ in range(2):  # the second registration prints "... already exists"
                # The run has no model: each call fails after MLflow has printed its message.
                with contextlib.suppress(MlflowException):
                    mlflow.register_model(f"runs:/{run.info.run_id}/model", "mlflow-messages-check")
    finally:
        mlflow.set_tracking_uri(None)
    assert "already exists" not in capfd.readouterr().err
    already = [record for record in caplog.records if "already exists" in record.getMessage()]
    assert already and all(record.levelno == logging.INFO for record in already)
