"""The installed distribution: packages, console scripts and Airflow provider registration."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_packages_import_from_their_folders():
    import pachd_lite
    import pachflow
    import spark_jobs

    assert Path(pachflow.__file__).parent == ROOT / "plugins" / "pachflow"
    assert Path(pachd_lite.__file__).parent == ROOT / "pachd_lite"
    assert Path(spark_jobs.__file__).parent == ROOT / "spark_jobs"


@pytest.mark.parametrize("script", ["pachflow", "pachd-lite"])
def test_console_scripts_have_help(script):
    result = subprocess.run([str(BIN / script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_unknown_pachflow_command_is_an_error():
    result = subprocess.run([str(BIN / "pachflow"), "no-such-command"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown command 'no-such-command'" in result.stderr


def test_entry_points_are_registered():
    provider_values = {ep.value for ep in entry_points(group="apache_airflow_provider")}
    assert "pachflow.get_provider_info:get_provider_info" in provider_values
    sources = {ep.name: ep.value for ep in entry_points(group="mlflow.dataset_source")}
    assert sources.get("pachyderm") == "pachflow.mlflow_source:PachydermDatasetSource"


def test_airflow_discovers_the_provider_and_connection_type():
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers
    assert "pachflow" in providers
    types = {entry["connection-type"]: entry for entry in providers["pachflow"].data["connection-types"]}
    assert set(types) == {"pachyderm", "mlflow"}
    conn_type = types["pachyderm"]
    behaviour = conn_type["ui-field-behaviour"]
    assert behaviour["relabeling"] == {
        "host": "pachd address",
        "port": "pachd port",
        "password": "Auth token",
    }
    assert {"project", "tls"} <= set(conn_type["conn-fields"])


def test_pachyderm_connection_returns_the_project_hook():
    from airflow.sdk import Connection

    from pachflow.hooks.pachyderm import PachydermHook

    hook = Connection(
        conn_id="pachyderm_default", conn_type="pachyderm", host="localhost", port=30650
    ).get_hook()
    assert isinstance(hook, PachydermHook)


def test_mlflow_connection_returns_the_mlflow_hook():
    from airflow.sdk import Connection

    from pachflow.hooks.mlflow import MLflowHook

    conn = Connection(conn_id="mlflow_default", conn_type="mlflow", host="http://127.0.0.1:5000")
    assert isinstance(conn.get_hook(), MLflowHook)


def test_airflow_providers_list_shows_pachflow(tmp_path):
    env = {"AIRFLOW_HOME": str(tmp_path), "PATH": str(BIN), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run(
        [str(BIN / "airflow"), "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    names = {p["package_name"] for p in json.loads(result.stdout)}
    assert "pachflow" in names


def test_dags_folder_has_no_import_errors():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}


SPECS = sorted((ROOT / "pachyderm_specs").glob("*.json"))


@pytest.mark.skipif(not SPECS, reason="pachyderm_specs/ holds no specs yet")
@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.name)
def test_pipeline_specs_parse_as_create_pipeline_request(spec_path):
    from pachyderm_sdk.api import pps

    text = spec_path.read_text()
    request = pps.CreatePipelineRequest().from_json(text)
    assert request.pipeline.name == spec_path.stem
    assert request.transform.cmd, f"{spec_path.name}: transform.cmd is empty"
