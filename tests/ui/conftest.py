"""UI tests: one recorded training of a joined graph, and an Airflow api-server that serves it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk import DAG

from pachflow.operators.lineage import PachydermRecordLineageOperator
from tests.fixtures.airflow import airflow_connections, mlflow_conn, pachyderm_conn
from tests.fixtures.pachd import unique_name
from tests.provider.worker_specs import build_join_graph
from tests.ui.server import ApiServer

START = pendulum.datetime(2026, 1, 1, tz="UTC")


@pytest.fixture(scope="module")
def connections(pachd_server, mlflow_server) -> dict[str, dict]:
    return {
        "pachyderm_default": pachyderm_conn(pachd_server.host, pachd_server.port),
        "mlflow_default": mlflow_conn(mlflow_server.tracking_uri),
    }


@pytest.fixture(scope="module")
def recorded(run_dag, pachd_server, mlflow_server, connections) -> SimpleNamespace:
    """events + labels joined into features, a trainer, recorded by a DAG run (model alias production)."""
    g = build_join_graph(pachd_server.client(), mlflow_server.tracking_uri, unique_name("exp"))
    model = unique_name("scorer")
    with DAG(unique_name("ui_lineage"), schedule=None, start_date=START) as dag:
        PachydermRecordLineageOperator(
            task_id="record",
            commit_set=g.train_commit,
            project=g.project,
            train_repo=g.train,
            model_name=model,
            alias="production",
        )
    with airflow_connections(**connections):
        dr = run_dag(dag)
    ti = dr.get_task_instance("record")
    rec = ti.xcom_pull(task_ids="record", key="lineage")
    assert rec and rec["model_version"] == "1", rec
    link = ti.xcom_pull(task_ids="record", key="_link_PachydermCommitLink")
    return SimpleNamespace(g=g, model=model, dag_id=dag.dag_id, run_id=dr.run_id, rec=rec, commit_link=link)


@pytest.fixture(scope="module")
def api_server(recorded, connections, tmp_path_factory) -> Iterator[ApiServer]:
    env = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(fields) for conn_id, fields in connections.items()}
    with ApiServer(tmp_path_factory.mktemp("api"), env) as server:
        yield server
