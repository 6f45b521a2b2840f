"""The whole fraud_detection DAG: real Airflow dag.test(), real pachd-lite (from empty), real MLflow, real Spark.

One pytest module, one Airflow process: the in-process API start-up (~5 s) is paid once.
Scenario, in order (each step builds on the previous one):
1. first run on two generated days, triggered with no ``source`` param: the DAG's default (the
   demo's ``$PACHFLOW_LOCAL_DIR/data/raw``, params.json included) is taken; succeeds; XCom
   ``lineage`` names every repo; MLflow run tags, model version and Pachyderm commit metadata
   agree; ``pachflow lineage`` both ways;
2. second run with no new data: nothing pushed, nothing retrained (skips, not failures);
3. a third day: only the new file is processed by split (older datums skipped), a new run;
4. ``fraud_model_rollback`` moves the champion alias back to the first run's version; the same
   rollback again changes nothing and says so.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.fixtures.airflow import airflow_connections, mlflow_conn, pachyderm_conn
from tests.fixtures.pachd import PachdProcess, unique_name

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

PROJECT = "default"
REPOS = ["raw_data", "split_data", "etl", "ml_train"]


@pytest.fixture(scope="module")
def stack(mlflow_server, airflow_db):
    """An empty pachd-lite of our own, the session MLflow server, and the Airflow connections to them."""
    from pachflow_tools.javacheck import MIN_JAVA, java_major_version

    major = java_major_version()
    if major is None or major < MIN_JAVA:
        pytest.skip(f"the e2e DAG runs Spark jobs: needs Java {MIN_JAVA}+ (found {major})")
    base = Path(tempfile.mkdtemp(prefix="pachflow-e2e-"))
    pachd = PachdProcess(base / "pachd").start()
    try:
        with airflow_connections(
            pachyderm_default=pachyderm_conn(pachd.host, pachd.port),
            mlflow_default=mlflow_conn(mlflow_server.tracking_uri),
        ):
            yield {"pachd": pachd, "mlflow": mlflow_server.tracking_uri, "base": base}
    finally:
        pachd.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def days(stack):
    """Three generated days of PaySim-shaped CSVs (small, with enough fraud to learn from), written
    where `make demo` writes them (``<local dir>/data/raw``, with the demo's params.json stamp)."""
    from spark_jobs import generate

    out = stack["base"] / "local" / "data" / "raw"
    args = {"rows": 9000, "days": 3, "seed": 7}
    code = generate.main(["--output", str(out), "--rows", "9000", "--days", "3", "--customers", "1500",
                          "--fraud-rate", "0.03", "--seed", "7"])  # fmt: skip
    assert code == 0
    (out / "params.json").write_text(json.dumps(args))  # as pachflow_tools.demo.generate_sample stamps it
    files = sorted(out.glob("*.csv"))
    assert len(files) == 3, files
    return files


def _run(dag_id: str, conf: dict):
    from airflow.dag_processing.dagbag import DagBag

    from tests.fixtures.airflow import ROOT

    dag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py")).get_dag(dag_id)
    return dag.test(run_conf=conf)


def _states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _head(client, repo: str) -> str:
    from pachyderm_sdk.api import pfs

    branch = pfs.Branch(
        repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=PROJECT)), name="master"
    )
    return client.pfs.inspect_branch(branch=branch).head.id


@pytest.fixture(scope="module")
def first_run() -> dict:
    """Filled by the scenario with its first DAG run, for the Lineage tab check that follows."""
    return {}


def test_fraud_detection_end_to_end(stack, days, first_run, capsys, monkeypatch):
    from mlflow import MlflowClient
    from pachyderm_sdk.api import pfs

    from pachflow_tools import lineage_cli

    client = stack["pachd"].client()
    mlflow_client = MlflowClient(stack["mlflow"])
    # No `source` param: the DAG (parsed by each _run) defaults to $PACHFLOW_LOCAL_DIR/data/raw.
    monkeypatch.setenv("PACHFLOW_LOCAL_DIR", str(stack["base"] / "local"))
    monkeypatch.delenv("PACHFLOW_RAW_SOURCE", raising=False)
    held_back = stack["base"] / days[2].name
    days[2].rename(held_back)  # day 3 arrives in step 3
    conf = {
        "mlflow_experiment": unique_name("e2e-exp"),
        "model_name": unique_name("e2e-model"),
        "max_depth": 4,
    }

    # 1. first run from an empty pachd-lite
    dr = _run("fraud_detection", conf)
    states = _states(dr)
    assert set(states.values()) == {"success"}, states
    rec = dr.get_task_instance("record_lineage").xcom_pull(task_ids="record_lineage", key="lineage")
    assert list(rec["commits"]) == REPOS
    first_run.update(run_id=dr.run_id, rec=rec)
    c1 = dr.get_task_instance("push_raw_data").xcom_pull(task_ids="push_raw_data")
    assert rec["commit_set"] == c1 and set(rec["commits"].values()) == {c1}
    raw = pfs.Commit(repo=pfs.Repo(name="raw_data", type="user", project=pfs.Project(name=PROJECT)), id=c1)
    pushed = sorted(i.file.path for i in client.pfs.list_file(file=pfs.File(commit=raw, path="/")))
    assert pushed == [f"/{f.name}" for f in days[:2]]  # the default source's CSVs, not its params.json
    run1 = rec["mlflow_run_id"]
    tags = mlflow_client.get_run(run1).data.tags
    meta = client.pfs.inspect_commit(
        commit=pfs.Commit(
            repo=pfs.Repo(name="ml_train", type="user", project=pfs.Project(name=PROJECT)), id=c1
        )
    ).metadata
    assert tags["pachyderm.commit"] == c1 == rec["commits"]["ml_train"]
    assert all(tags[f"pachyderm.provenance.{r}"] == c1 for r in REPOS[:-1])
    assert meta["mlflow.run_id"] == run1 and meta["mlflow.model_version"] == rec["model_version"] == "1"
    assert meta["mlflow.experiment_id"] == tags.get("mlflow.experiment_id", rec["mlflow_experiment_id"])
    assert tags["airflow.run_id"] == meta["airflow.run_id"] == dr.run_id
    assert mlflow_client.get_model_version_by_alias(conf["model_name"], "champion").version == "1"

    conn = ["--pachd-address", stack["pachd"].address, "--tracking-uri", stack["mlflow"]]
    capsys.readouterr()  # drop what dag.test() logged to stdout
    assert lineage_cli.main(["--run-id", run1, "--json", *conn]) == 0
    forward = json.loads(capsys.readouterr().out)
    assert forward["commits"] == rec["commits"] and forward["consistent"] is True
    assert lineage_cli.main(["--commit", f"raw_data@{c1}", "--json", *conn]) == 0, capsys.readouterr().err
    backward = json.loads(capsys.readouterr().out)
    assert [(r["mlflow_run_id"], r["model_version"]) for r in backward] == [(run1, "1")]

    # 2. no new data: skipped quickly, nothing retrained
    experiment = mlflow_client.get_experiment_by_name(conf["mlflow_experiment"])
    runs_before = len(mlflow_client.search_runs([experiment.experiment_id]))
    train_head = _head(client, "ml_train")
    dr = _run("fraud_detection", conf)
    states = _states(dr)
    assert states["apply_pipelines"] == "success"
    assert {
        states[t] for t in ("push_raw_data", "wait_split_data", "wait_etl", "wait_ml_train", "record_lineage")
    } == {"skipped"}, states
    assert str(dr.state) == "success"
    assert len(mlflow_client.search_runs([experiment.experiment_id])) == runs_before
    assert _head(client, "ml_train") == train_head

    # 3. one new day: split processes only the new file
    held_back.rename(days[2])
    dr = _run("fraud_detection", conf)
    states = _states(dr)
    assert set(states.values()) == {"success"}, states
    split_job = dr.get_task_instance("wait_split_data").xcom_pull(task_ids="wait_split_data")["job"]
    assert (split_job["data_processed"], split_job["data_skipped"], split_job["data_total"]) == (1, 2, 3)
    etl_job = dr.get_task_instance("wait_etl").xcom_pull(task_ids="wait_etl")["job"]
    assert etl_job["data_processed"] + etl_job["data_skipped"] == etl_job["data_total"]
    assert etl_job["data_skipped"] > 0, etl_job  # bucket files of the first two days are not recomputed
    rec3 = dr.get_task_instance("record_lineage").xcom_pull(task_ids="record_lineage", key="lineage")
    assert rec3["mlflow_run_id"] != run1 and rec3["model_version"] == "2"
    assert mlflow_client.get_model_version_by_alias(conf["model_name"], "champion").version == "2"

    # 4. rollback DAG: champion back to the first run's version (no compute, raw data untouched)
    raw_head = _head(client, "raw_data")
    dr = _run("fraud_model_rollback", {"to": run1, "model_name": conf["model_name"]})
    assert set(_states(dr).values()) == {"success"}
    result = dr.get_task_instance("rollback_model").xcom_pull(task_ids="rollback_model", key="lineage")
    assert (result["from_version"], result["to_version"]) == ("2", "1")
    assert mlflow_client.get_model_version_by_alias(conf["model_name"], "champion").version == "1"
    assert _head(client, "raw_data") == raw_head
    # the same rollback again: the alias already holds that version, and the task log says so
    capsys.readouterr()
    dr = _run("fraud_model_rollback", {"to": run1, "model_name": conf["model_name"]})
    again = dr.get_task_instance("rollback_model").xcom_pull(task_ids="rollback_model", key="lineage")
    assert (again["alias_change"], again["alias_moved"]) == ("already there", False)
    said = f"Nothing to roll back: {conf['model_name']}@champion already holds version 1"
    assert said in capsys.readouterr().out


def test_lineage_tab_in_the_airflow_ui(stack, first_run, tmp_path):
    """The first run's Lineage tab in Airflow's UI shows every commit, the run and the model version."""
    from tests.ui.lineage_tab import check_lineage_tab

    if not first_run:
        pytest.skip("the end-to-end scenario did not get to its first run")
    check_lineage_tab(tmp_path, "fraud_detection", first_run["run_id"], first_run["rec"], stack["mlflow"])
