"""Test-session setup shared by every test.

Airflow reads its configuration from the environment when first imported, so the isolated
AIRFLOW_HOME and folders are set here, before any test module imports Airflow.
Fixtures for the real services live in tests/fixtures/ (one module per service).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="pachflow-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
# Tests must never talk to a developer's own services by accident.
for _var in (
    "PACHD_ADDRESS",
    "MLFLOW_TRACKING_URI",
    "AIRFLOW_CONN_PACHYDERM_DEFAULT",
    "AIRFLOW_CONN_MLFLOW_DEFAULT",
):
    os.environ.pop(_var, None)

# py4j logs "Closing down clientserver connection" from __del__ at interpreter exit, after
# pytest has closed the captured streams ("--- Logging error ---" noise at the end of a run).
logging.getLogger("py4j").setLevel(logging.WARNING)

pytest_plugins = [
    "tests.fixtures.pachd",
    "tests.fixtures.mlflow_server",
    "tests.fixtures.spark",
    "tests.fixtures.airflow",
    "tests.fixtures.chromium",
]


@pytest.fixture(autouse=True)
def _restore_mlflow_http_settings():
    """The CLIs set MLflow's HTTP timeout/retry variables for their process; tests call them
    in-process, so put those variables back after each test."""
    names = ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    saved = {name: os.environ.get(name) for name in names}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
