"""The churn example end to end: real Airflow dag.test(), pachd-lite from empty, real MLflow, no Spark.

The second shape next to fraud_detection: project ``research``, inputs ``events`` and ``labels``
joined by ``features``, a scikit-learn ``churn_model`` trainer on ``pachflow.worker``, model
``churn-scorer`` with alias ``production``. Scenario, in order:
1. first day: one commit set for both inputs, one job per pipeline, one MLflow run; XCom
   ``lineage``, run tags, model version and commit metadata agree; the same data again: the
   push is skipped and nothing after it runs;
2. second day: only the new day's datum is processed by ``features``; version 2 is production;
3. lineage both ways: the run finds the commits of both inputs; a commit of either input
   finds the run and its model version (API and ``pachflow lineage`` CLI);
4. ``churn_model_rollback`` to the first run: both inputs' branches move back together (one
   commit set) and ``production`` moves back to version 1.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.fixtures.airflow import airflow_connections, mlflow_conn, pachyderm_conn
from tests.fixtures.pachd import PachdProcess, unique_name

pytestmark = pytest.mark.e2e

PROJECT = "research"
INPUTS = ("events", "labels")
PIPELINES = ("features", "churn_model")
MODEL, ALIAS = "churn-scorer", "production"


@pytest.fixture(scope="module")
def stack(mlflow_server, airflow_db):
    """An empty pachd-lite of our own (project ``research`` does not exist yet), the session MLflow."""
    base = Path(tempfile.mkdtemp(prefix="pachflow-churn-"))
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


def _run(dag_id: str, conf: dict):
    from airflow.dag_processing.dagbag import DagBag

    from tests.fixtures.airflow import ROOT

    dag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py")).get_dag(dag_id)
    return dag.test(run_conf=conf)


def _states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _xcom(dr, task_id: str, key: str = "return_value"):
    return dr.get_task_instance(task_id).xcom_pull(task_ids=task_id, key=key)


def _repo(name: str):
    from pachyderm_sdk.api import pfs

    return pfs.Repo(name=name, type="user", project=pfs.Project(name=PROJECT))


def _head(client, repo: str) -> str:
    from pachyderm_sdk.api import pfs

    return client.pfs.inspect_branch(branch=pfs.Branch(repo=_repo(repo), name="master")).head.id


def _job_ids(client) -> dict[str, list[str]]:
    """pipeline -> ids of its jobs (= commit sets)."""
    from pachyderm_sdk.api import pfs, pps

    return {
        p: [
            j.job.id
            for j in client.pps.list_job(pipeline=pps.Pipeline(name=p, project=pfs.Project(name=PROJECT)))
        ]
        for p in PIPELINES
    }


@pytest.fixture(scope="module")
def first_run() -> dict:
    """Filled by the scenario with its first DAG run, for the Lineage tab check that follows."""
    return {}


def test_churn_model_end_to_end(stack, first_run, capsys):
    from mlflow import MlflowClient
    from pachyderm_sdk.api import pfs

    from example_pipelines.churn import generate
    from pachflow.lineage import lineage_for_commit, lineage_for_run
    from pachflow_tools import lineage_cli

    client = stack["pachd"].client()
    mlflow_client = MlflowClient(stack["mlflow"])
    generated, source = stack["base"] / "generated", stack["base"] / "source"
    assert generate.main(["--output", str(generated), "--days", "2", "--customers", "400"]) == 0
    experiment = unique_name("churn-e2e")
    conf = {
        "events": str(source / "events" / "*.csv"),
        "labels": str(source / "labels" / "*.csv"),
        "mlflow_experiment": experiment,
        "logreg_c": 0.5,
    }

    def add_day(day: str) -> None:
        for repo in INPUTS:
            (source / repo).mkdir(parents=True, exist_ok=True)
            shutil.copy(generated / repo / f"{day}.csv", source / repo)

    # 1. first day, from an empty pachd-lite: project, repos and pipelines are created
    add_day("2026-01-01")
    dr = _run("churn_model", conf)
    assert set(_states(dr).values()) == {"success"}, _states(dr)
    c1 = _xcom(dr, "push_data")
    rec1 = _xcom(dr, "record_lineage", "lineage")
    first_run.update(run_id=dr.run_id, rec=rec1)
    assert rec1["commit_set"] == c1
    assert {r: rec1["commits"][r] for r in (*INPUTS, *PIPELINES)} == dict.fromkeys((*INPUTS, *PIPELINES), c1)
    # each pipeline: the job its creation started, then ONE job for both inputs (one commit set)
    assert all(len(jobs) == 2 and c1 in jobs for jobs in _job_ids(client).values()), _job_ids(client)
    run1 = rec1["mlflow_run_id"]
    run = mlflow_client.get_run(run1)
    assert run.info.run_name == f"churn_model@{c1}" and run.info.status == "FINISHED"
    assert run.data.metrics["roc_auc"] > 0.7 and run.data.params["logreg_c"] == "0.5"
    tags = run.data.tags
    assert tags["pachyderm.project"] == PROJECT and tags["pachyderm.commit"] == c1
    assert all(tags[f"pachyderm.provenance.{r}"] == c1 for r in (*INPUTS, "features"))
    assert len(mlflow_client.search_runs([run.info.experiment_id])) == 1
    (dataset,) = [d.dataset for d in run.inputs.dataset_inputs]
    assert (dataset.name, dataset.digest) == ("features", c1)
    assert dataset.source_type == "pachyderm"
    assert json.loads(dataset.source)["uri"].endswith(f"/{PROJECT}/features@{c1}"), dataset.source
    assert (
        rec1["model_version"] == "1" and mlflow_client.get_model_version_by_alias(MODEL, ALIAS).version == "1"
    )
    meta = client.pfs.inspect_commit(commit=pfs.Commit(repo=_repo("churn_model"), id=c1)).metadata
    assert meta["mlflow.run_id"] == run1 and meta["mlflow.model_version"] == "1"

    # nothing new: the push is skipped and so is everything after it; no job, no run
    dr = _run("churn_model", conf)
    states = _states(dr)
    assert states.pop("apply_pipelines") == "success" and set(states.values()) == {"skipped"}, states
    assert all(len(jobs) == 2 for jobs in _job_ids(client).values())
    assert len(mlflow_client.search_runs([run.info.experiment_id])) == 1

    # 2. a second day: features processes only the new day; version 2 becomes production
    add_day("2026-01-02")
    dr = _run("churn_model", conf)
    assert set(_states(dr).values()) == {"success"}, _states(dr)
    c2 = _xcom(dr, "push_data")
    job = _xcom(dr, "wait_features")["job"]
    assert (job["data_processed"], job["data_skipped"], job["data_total"]) == (1, 1, 2)
    rec2 = _xcom(dr, "record_lineage", "lineage")
    run2 = rec2["mlflow_run_id"]
    assert run2 != run1 and rec2["model_version"] == "2" and rec2["commits"]["labels"] == c2
    assert mlflow_client.get_model_version_by_alias(MODEL, ALIAS).version == "2"
    assert all(len(jobs) == 3 and c2 in jobs for jobs in _job_ids(client).values()), _job_ids(client)
    assert len(mlflow_client.search_runs([run.info.experiment_id])) == 2  # no stray run

    # 3. lineage both ways, for the two inputs
    forward = lineage_for_run(mlflow_client, run2, client=client)
    assert {r: forward["commits"][r] for r in INPUTS} == {"events": c2, "labels": c2}
    assert set(forward["sources"]) == set(INPUTS)
    edges = {(e["from"], e["to"]) for e in forward["graph"]["edges"]}

    def node(repo: str) -> str:
        return f"{PROJECT}/{repo}@{c2}"

    # the join: both inputs feed features directly (siblings, not a chain), features feeds the trainer
    assert {(node("events"), node("features")), (node("labels"), node("features"))} <= edges
    assert (node("features"), node("churn_model")) in edges
    assert (node("events"), node("labels")) not in edges and (node("labels"), node("events")) not in edges
    assert (node("churn_model"), f"mlflow_run:{run2}") in edges
    for repo in INPUTS:
        back = lineage_for_commit(client, mlflow_client, project=PROJECT, repo=repo, commit_id=c1)
        assert [(r["mlflow_run_id"], r["model_version"]) for r in back] == [(run1, "1")], back
    conn = ["--pachd-address", stack["pachd"].address, "--tracking-uri", stack["mlflow"]]
    capsys.readouterr()  # drop what dag.test() logged to stdout
    assert lineage_cli.main(["--commit", f"{PROJECT}/labels@{c2}", "--json", *conn]) == 0
    assert [r["mlflow_run_id"] for r in json.loads(capsys.readouterr().out)] == [run2]
    assert lineage_cli.main(["--run-id", run1, "--json", *conn]) == 0
    assert json.loads(capsys.readouterr().out)["commits"]["events"] == c1
    assert lineage_cli.main(["--run-id", run1, *conn]) == 0
    tree = capsys.readouterr().out
    assert f"model {MODEL} version 1" in tree and f"churn_model@{c1}" in tree
    assert f"├── events@{c1}" in tree and f"└── labels@{c1}" in tree, tree  # two branches of the join

    # 4. data + model rollback to the first run: both inputs move back together, and the alias
    dr = _run("churn_model_rollback", {"to": run1, "data": True})
    assert set(_states(dr).values()) == {"success"}, _states(dr)
    assert mlflow_client.get_model_version_by_alias(MODEL, ALIAS).version == "1"
    assert {r: _head(client, r) for r in INPUTS} == {"events": c1, "labels": c1}
    result = _xcom(dr, "rollback", "lineage")
    assert (result["from_version"], result["to_version"]) == ("2", "1")
    # one transaction: the pipelines catch up on the restored inputs with ONE job each
    restored = client.pfs.wait_commit(pfs.Commit(repo=_repo("churn_model"), id=result["commit_set"]))
    assert not restored.error
    assert all(len(jobs) == 4 and result["commit_set"] in jobs for jobs in _job_ids(client).values())


def test_lineage_tab_of_the_join_in_the_airflow_ui(stack, first_run, tmp_path):
    """The first run's Lineage tab in Airflow's UI draws both inputs of the join (headless Chromium)."""
    from tests.ui.lineage_tab import check_lineage_tab

    if not first_run:
        pytest.skip("the end-to-end scenario did not get to its first run")
    check_lineage_tab(tmp_path, "churn_model", first_run["run_id"], first_run["rec"], stack["mlflow"])
