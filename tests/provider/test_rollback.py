"""All-or-nothing rollback against a real pachd-lite and MLflow, with two source repos crossed into one pipeline.

The graph is ``<a>`` x ``<b>`` (a ``cross`` input) -> ``<features>`` -> ``<train>`` (the fake trainer of
tests/provider/specs.py logs a real MLflow run). Each test builds its own graph with unique names.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field

import pendulum
import pytest
from airflow.sdk import DAG
from pachyderm_sdk.api import pfs, pps

from pachflow.exceptions import ConfigurationError, RollbackError
from pachflow.lineage import record_lineage
from pachflow.operators.rollback import PachydermRollbackOperator
from pachflow.rollback import apply_rollback, plan_rollback, rollback
from pachflow_tools import rollback_cli
from tests.fixtures.pachd import unique_name
from tests.provider.specs import FAKE_TRAIN

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PROJECT = "default"
CROSS_COPY = (
    "import shutil\nfor name in ({a!r}, {b!r}):\n"
    "    shutil.copytree('/pfs/' + name, '/pfs/out/' + name, dirs_exist_ok=True)\n"
)


@dataclass
class Graph:
    """Names of one test's repos, pipelines and model, and the runs recorded so far (run id, commit set)."""

    a: str
    b: str
    features: str
    train: str
    model: str
    alias: str = "production"
    runs: list[tuple[str, str]] = field(default_factory=list)


def _repo(name: str) -> pfs.Repo:
    return pfs.Repo(name=name, type="user", project=pfs.Project(name=PROJECT))


def _branch(name: str) -> pfs.Branch:
    return pfs.Branch(repo=_repo(name), name="master")


def head(client, repo: str) -> str:
    return client.pfs.inspect_branch(branch=_branch(repo)).head.id


def push(client, files: dict[str, bytes]) -> str:
    """Commit to every repo in ``files`` in one commit set (started in one transaction); its id."""
    with client.transaction.transaction():
        commits = {repo: client.pfs.start_commit(branch=_branch(repo)) for repo in files}
    for repo, data in files.items():
        client.pfs.put_file_from_bytes(commit=commits[repo], path=f"/{repo}.csv", data=data)
        client.pfs.finish_commit(commit=commits[repo])
    ids = {c.id for c in commits.values()}
    assert len(ids) == 1, ids
    return ids.pop()


def wait_trained(client, graph: Graph, commit_set: str) -> None:
    commit = pfs.Commit(repo=_repo(graph.train), id=commit_set)
    client.pfs.inspect_commit(commit=commit, wait=pfs.CommitState.FINISHED)
    job = client.pps.inspect_job(
        job=pps.Job(pipeline=pps.Pipeline(name=graph.train, project=pfs.Project(name=PROJECT)), id=commit_set),
        wait=True,
    )
    assert job.state == pps.JobState.JOB_SUCCESS, (job.state, job.reason)


def record(client, mlflow_client, tracking_uri: str, graph: Graph, commit_set: str) -> str:
    """Record the training of ``commit_set`` (alias on its version) and return its run id."""
    kwargs = dict(
        project=PROJECT,
        address="grpc://test",
        tracking_uri=tracking_uri,
        commit_set=commit_set,
        dag_id="test",
        airflow_run_id="test",
        train_repo=graph.train,
        model_name=graph.model,
        alias=graph.alias,
    )
    if "raw_repo" in inspect.signature(record_lineage).parameters:  # older signature: one raw repo
        kwargs["raw_repo"] = graph.a
    rec = record_lineage(client, mlflow_client, **kwargs)
    graph.runs.append((rec["mlflow_run_id"], commit_set))
    return rec["mlflow_run_id"]


def build_graph(client, mlflow_client, tracking_uri: str, *, separate_first_pushes: bool = False) -> Graph:
    """Create the graph, train twice (recording each) and leave the alias on version 2.

    Run 1 is trained on a1 x b1, run 2 on a2 x b2 (pushed together). With ``separate_first_pushes``
    a1 and b1 are pushed in commit sets of their own before the pipelines exist, and run 1 is trained
    by the pipelines' creation.
    """
    g = Graph(unique_name("a"), unique_name("b"), unique_name("feat"), unique_name("train"), unique_name("m"))
    for repo in (g.a, g.b):
        client.pfs.create_repo(repo=_repo(repo))
    if separate_first_pushes:
        push(client, {g.a: b"x\n1\n"})
        push(client, {g.b: b"y\n1\n"})
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_EXPERIMENT_NAME": "pachflow-rollback-tests"}
    specs = [
        {
            "pipeline": {"name": g.features, "project": {"name": PROJECT}},
            "transform": {"cmd": ["python3", "-c", CROSS_COPY.format(a=g.a, b=g.b)], "image": "pachflow-tests"},
            "input": {"cross": [{"pfs": {"repo": g.a, "glob": "/"}}, {"pfs": {"repo": g.b, "glob": "/"}}]},
            "datum_tries": 1,
        },
        {
            "pipeline": {"name": g.train, "project": {"name": PROJECT}},
            "transform": {"cmd": ["python3", "-c", FAKE_TRAIN.format(inp=g.features)], "env": env},
            "input": {"pfs": {"repo": g.features, "glob": "/"}},
            "datum_tries": 1,
        },
    ]
    for spec in specs:
        client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    if separate_first_pushes:
        first = head(client, g.train)
    else:
        first = push(client, {g.a: b"x\n1\n", g.b: b"y\n1\n"})
    wait_trained(client, g, first)
    record(client, mlflow_client, tracking_uri, g, first)
    second = push(client, {g.a: b"x\n1\n2\n", g.b: b"y\n1\n2\n"})
    wait_trained(client, g, second)
    record(client, mlflow_client, tracking_uri, g, second)
    assert mlflow_client.get_model_version_by_alias(g.model, g.alias).version == "2"
    return g


@pytest.fixture
def services(pachd_server, mlflow_server, monkeypatch):
    """(pachd client, MlflowClient, tracking URI); MLflow's HTTP settings restored after a CLI run."""
    from mlflow import MlflowClient

    for var in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.delenv(var, raising=False)
    uri = mlflow_server.tracking_uri
    return pachd_server.client(), MlflowClient(uri, registry_uri=uri), uri


def jobs_of(client, pipeline: str) -> list[str]:
    pipe = pps.Pipeline(name=pipeline, project=pfs.Project(name=PROJECT))
    return [j.job.id for j in client.pps.list_job(pipeline=pipe)]


def test_two_source_repos_move_back_together_in_one_commit_set(services):
    client, mlflow_client, uri = services
    g = build_graph(client, mlflow_client, uri)
    (run1, set1), (_, set2) = g.runs
    assert (head(client, g.a), head(client, g.b)) == (set2, set2)
    jobs_before = set(jobs_of(client, g.features))

    result = rollback(mlflow_client, client, model_name=g.model, alias=g.alias, to_run_id=run1, data=True, project=PROJECT)

    assert (result["from_version"], result["to_version"], result["alias_moved"]) == ("2", "1", True)
    assert mlflow_client.get_model_version_by_alias(g.model, g.alias).version == "1"
    assert (head(client, g.a), head(client, g.b)) == (set1, set1)
    moved = {d["repo"]: (d["from_commit"], d["to_commit"], d["moved"]) for d in result["data"]}
    assert moved == {g.a: (set2, set1, True), g.b: (set2, set1, True)}
    # one new commit set downstream: exactly one job per pipeline for both branch moves
    new_jobs = set(jobs_of(client, g.features)) - jobs_before
    assert new_jobs == {result["commit_set"]}
    wait_trained(client, g, result["commit_set"])
    tag = json.loads(mlflow_client.get_registered_model(g.model).tags["pachflow.last_rollback"])
    assert tag["to_version"] == "1" and tag["commit_set"] == result["commit_set"]
    assert mlflow_client.get_model_version(g.model, "1").tags["pachflow.rolled_back_to_at"] == result["at"]

    again = rollback(mlflow_client, client, model_name=g.model, alias=g.alias, to_run_id=run1, data=True, project=PROJECT)
    assert again["alias_change"] == "already there" and again["alias_moved"] is False
    assert [d["change"] for d in again["data"]] == ["already there", "already there"]
    assert again["commit_set"] is None and set(jobs_of(client, g.features)) - jobs_before == new_jobs
