"""Provider tests: Airflow connections pointing at the session's pachd-lite (and MLflow when used)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.fixtures.airflow import mlflow_conn, pachyderm_conn


@pytest.fixture
def pachyderm_connection(pachd_server) -> Iterator[None]:
    """``pachyderm_default`` -> the shared pachd-lite, as an AIRFLOW_CONN_* variable."""
    key = "AIRFLOW_CONN_PACHYDERM_DEFAULT"
    old = os.environ.get(key)
    os.environ[key] = json.dumps(pachyderm_conn(pachd_server.host, pachd_server.port))
    yield
    if old is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = old


@pytest.fixture
def mlflow_connection(mlflow_server) -> Iterator[str]:
    """``mlflow_default`` -> the session's MLflow server; yields the tracking URI."""
    key = "AIRFLOW_CONN_MLFLOW_DEFAULT"
    old = os.environ.get(key)
    os.environ[key] = json.dumps(mlflow_conn(mlflow_server.tracking_uri))
    yield mlflow_server.tracking_uri
    if old is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = old
