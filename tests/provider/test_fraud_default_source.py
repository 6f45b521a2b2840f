"""The fraud DAG's default ``source`` is where `make demo` generates its sample, and its push task
(``*.csv`` only, PaySim's header checked) takes that folder as it is, params.json included."""

from __future__ import annotations

import importlib.util

import pendulum
from airflow.sdk import DAG
from pachyderm_sdk.api import pfs

from pachflow.operators.files import PachydermPutFilesOperator
from pachflow_tools import demo
from pachflow_tools.local.settings import LocalSettings, project_root
from tests.fixtures.pachd import unique_name


def _load_fraud_dag():
    path = project_root() / "dags" / "fraud_detection.py"
    spec = importlib.util.spec_from_file_location(unique_name("fraud_detection_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_default_source_is_the_demo_sample_and_its_push_succeeds(
    run_dag, pachyderm_connection, pachd_server, tmp_path, monkeypatch
):
    from airflow.utils.state import TaskInstanceState

    monkeypatch.setenv("PACHFLOW_LOCAL_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PACHFLOW_RAW_SOURCE", raising=False)
    options = demo.DemoOptions(rows=3_000, days=3, seed=1, settings=LocalSettings.resolve())
    files = demo.generate_sample(options)
    assert (options.raw_dir / "params.json").exists()

    fraud = _load_fraud_dag()
    assert fraud.params["source"] == str(options.raw_dir)
    task = fraud.get_task("push_raw_data")
    repo = unique_name("raw")
    with DAG(unique_name("push"), schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        PachydermPutFilesOperator(
            task_id="push",
            source=fraud.params["source"],
            repo=repo,
            include=task.include,
            expected_columns=task.expected_columns,
        )
    ti = run_dag(dag).get_task_instance("push")
    assert ti.state == TaskInstanceState.SUCCESS
    commit = pfs.Commit(
        repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name="default")),
        id=ti.xcom_pull(task_ids="push"),
    )
    pushed = sorted(
        i.file.path for i in pachd_server.client().pfs.list_file(file=pfs.File(commit=commit, path="/"))
    )
    assert pushed == [f"/{p.name}" for p in files]
