"""All-or-nothing rollback against a real pachd-lite and MLflow, with two source repos crossed into one pipeline.

The graph is ``<a>`` x ``<b>`` (a ``cross`` input) -> ``<features>`` -> ``<train>`` (the fake trainer of
tests/provider/specs.py logs a real MLflow run). Each test builds its own graph with unique names.
"""

from __future__ import annotations

import copy
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
        job=pps.Job(
            pipeline=pps.Pipeline(name=graph.train, project=pfs.Project(name=PROJECT)), id=commit_set
        ),
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
    a1 and b1 are pushed in commit sets of their own, and run 1 is trained in b1's commit set.
    """
    g = Graph(unique_name("a"), unique_name("b"), unique_name("feat"), unique_name("train"), unique_name("m"))
    for repo in (g.a, g.b):
        client.pfs.create_repo(repo=_repo(repo))
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_EXPERIMENT_NAME": "pachflow-rollback-tests"}
    specs = [
        {
            "pipeline": {"name": g.features, "project": {"name": PROJECT}},
            "transform": {
                "cmd": ["python3", "-c", CROSS_COPY.format(a=g.a, b=g.b)],
                "image": "pachflow-tests",
            },
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
        push(client, {g.a: b"x\n1\n"})
        first = push(client, {g.b: b"y\n1\n"})
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


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = rollback_cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _rollback_dag(**operator_kwargs) -> DAG:
    with DAG(unique_name("rollback"), schedule=None, start_date=START) as dag:
        PachydermRollbackOperator(task_id="rollback", **operator_kwargs)
    return dag


def test_two_source_repos_move_back_together_in_one_commit_set(
    services, run_dag, pachyderm_connection, mlflow_connection, pachd_server, capsys
):
    client, mlflow_client, uri = services
    g = build_graph(client, mlflow_client, uri)
    (run1, set1), (run2, set2) = g.runs
    assert (head(client, g.a), head(client, g.b)) == (set2, set2)
    conn = ["--pachd-address", f"{pachd_server.host}:{pachd_server.port}", "--tracking-uri", uri]
    common = ["--model-name", g.model, "--to-run-id", run1, "--data", "--project", PROJECT, *conn]

    # --dry-run prints the plan (both branches, the alias) and changes nothing
    code, out, err = _cli(capsys, *common, "--alias", g.alias, "--dry-run", "--json")
    assert code == 0, err
    planned = json.loads(out)
    assert planned["dry_run"] is True and (planned["from_version"], planned["to_version"]) == ("2", "1")
    assert {d["repo"]: (d["from_commit"], d["to_commit"]) for d in planned["data"]} == {
        g.a: (set2, set1),
        g.b: (set2, set1),
    }
    code, out, _ = _cli(capsys, *common, "--alias", g.alias, "--dry-run")
    assert code == 0 and out.startswith("dry run, nothing changed") and f"{PROJECT}/{g.b}@master" in out
    assert mlflow_client.get_model_version_by_alias(g.model, g.alias).version == "2"
    assert (head(client, g.a), head(client, g.b)) == (set2, set2)

    # --to-commit: a source commit (the training that used it) or the training commit itself
    for commit in (f"{g.a}@{set1}", f"{PROJECT}/{g.train}@{set1}"):
        target = ["--model-name", g.model, "--alias", g.alias, "--to-commit", commit, "--project", PROJECT]
        code, out, err = _cli(capsys, *target, "--dry-run", "--json", *conn)
        assert code == 0, err
        assert json.loads(out)["mlflow_run_id"] == run1

    # an alias the model does not have is an error, and is not created
    code, out, err = _cli(capsys, *common, "--alias", "prod")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "alias 'prod' does not exist on registered model" in err and "production -> version 2" in err
    assert "prod" not in mlflow_client.get_registered_model(g.model).aliases
    assert (head(client, g.a), head(client, g.b)) == (set2, set2)

    # the operator: both source branches move in one transaction -> one commit set, one job per pipeline
    jobs_before = set(jobs_of(client, g.features))
    dag = _rollback_dag(model_name=g.model, alias=g.alias, to_run_id=run1, data=True, project=PROJECT)
    dr = run_dag(dag)
    ti = dr.get_task_instance("rollback")
    assert ti.state == "success"
    result = ti.xcom_pull(task_ids="rollback", key="lineage")
    assert result == ti.xcom_pull(task_ids="rollback")
    assert (result["from_version"], result["to_version"], result["alias_moved"]) == ("2", "1", True)
    assert mlflow_client.get_model_version_by_alias(g.model, g.alias).version == "1"
    assert (head(client, g.a), head(client, g.b)) == (set1, set1)
    moved = {d["repo"]: (d["from_commit"], d["to_commit"], d["moved"]) for d in result["data"]}
    assert moved == {g.a: (set2, set1, True), g.b: (set2, set1, True)}
    assert set(jobs_of(client, g.features)) - jobs_before == {result["commit_set"]}
    wait_trained(client, g, result["commit_set"])
    assert set(jobs_of(client, g.train)) >= {result["commit_set"]}
    tag = json.loads(mlflow_client.get_registered_model(g.model).tags["pachflow.last_rollback"])
    assert tag["to_version"] == "1" and tag["commit_set"] == result["commit_set"]
    assert tag["reason"] == f"Airflow {dr.dag_id} run {dr.run_id}"
    assert mlflow_client.get_model_version(g.model, "1").tags["pachflow.rolled_back_to_at"] == result["at"]
    experiment = mlflow_client.get_run(run1).info.experiment_id
    link = ti.xcom_pull(task_ids="rollback", key="_link_MLflowRunLink")
    assert link == f"{uri}/#/experiments/{experiment}/runs/{run1}"

    # the same rollback again: everything is already there, nothing moves, no new job
    again = rollback(
        mlflow_client, client, model_name=g.model, alias=g.alias, to_run_id=run1, data=True, project=PROJECT
    )
    assert again["alias_change"] == "already there" and again["alias_moved"] is False
    assert [d["change"] for d in again["data"]] == ["already there", "already there"]
    assert again["commit_set"] is None
    assert set(jobs_of(client, g.features)) - jobs_before == {result["commit_set"]}

    # forward to run 2, but its version is deleted after planning: the alias move fails after the
    # branches moved, so they are moved back (in one transaction) and the message says so
    plan = plan_rollback(
        mlflow_client, client, model_name=g.model, alias=g.alias, to_run_id=run2, data=True, project=PROJECT
    )
    assert [b.needed for b in plan.branches] == [True, True]
    mlflow_client.delete_model_version(g.model, "2")
    with pytest.raises(RollbackError) as failed:
        apply_rollback(plan, mlflow_client, client)
    message = str(failed.value)
    assert f"failed while moving alias {g.model}@{g.alias} to version 2" in message
    assert "nothing is left changed" in message and "moved back in one transaction" in message
    assert f"alias {g.model}@{g.alias} still on version 1" in message
    assert f"{PROJECT}/{g.a}@master still at {set1}" in message
    assert f"{PROJECT}/{g.b}@master still at {set1}" in message
    assert mlflow_client.get_model_version_by_alias(g.model, g.alias).version == "1"
    assert (head(client, g.a), head(client, g.b)) == (set1, set1)


def test_a_failing_branch_move_changes_no_branch_and_not_the_alias(services):
    """b1 disappears after planning, so the transaction fails on b's move: a's move (valid on its own)
    does not happen either, the alias is not touched, and the message lists what is unchanged."""
    client, mlflow_client, uri = services
    g = build_graph(client, mlflow_client, uri, separate_first_pushes=True)
    (run1, set_b1), (_, set2) = g.runs
    plan = plan_rollback(
        mlflow_client, client, model_name=g.model, alias=g.alias, to_run_id=run1, data=True, project=PROJECT
    )
    targets = {b.repo: b.to_commit for b in plan.branches}
    assert targets[g.b] == set_b1 and targets[g.a] not in (set_b1, set2)  # a1 in a commit set of its own

    client.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=set_b1))  # b1 and what was computed from it
    assert not client.pfs.commit_exists(pfs.Commit(repo=_repo(g.b), id=set_b1))
    assert client.pfs.commit_exists(pfs.Commit(repo=_repo(g.a), id=targets[g.a]))

    with pytest.raises(RollbackError) as failed:
        apply_rollback(plan, mlflow_client, client)
    message = str(failed.value)
    assert "in one Pachyderm transaction" in message and "nothing changed" in message
    assert f"unchanged: alias {g.model}@{g.alias} still on version 2" in message
    assert f"{PROJECT}/{g.a}@master still at {set2}" in message
    assert f"{PROJECT}/{g.b}@master still at {set2}" in message
    assert "CHANGED" not in message
    assert (head(client, g.a), head(client, g.b)) == (set2, set2)
    assert mlflow_client.get_model_version_by_alias(g.model, g.alias).version == "2"
    assert "pachflow.last_rollback" not in mlflow_client.get_registered_model(g.model).tags


def test_plan_errors_name_what_is_wrong(services):
    client, mlflow_client, _ = services
    with pytest.raises(ConfigurationError, match="exactly one of to_run_id or to_commit .both given"):
        plan_rollback(mlflow_client, client, model_name="m", alias="a", to_run_id="r", to_commit="x@1")
    with pytest.raises(ConfigurationError, match="neither given"):
        plan_rollback(mlflow_client, client, model_name="m", alias="a")
    with pytest.raises(ConfigurationError, match="model_name is required"):
        plan_rollback(mlflow_client, client, model_name="", alias="a", to_run_id="r")
    with pytest.raises(ConfigurationError, match="expected .PROJECT/.REPO@COMMIT_ID"):
        plan_rollback(mlflow_client, client, model_name="m", alias="a", to_commit="no-at-sign")
    with pytest.raises(ConfigurationError, match="needs pachd"):
        plan_rollback(mlflow_client, None, model_name="m", alias="a", to_run_id="r", data=True)


def test_operator_checks_to_run_id_and_to_commit_at_parse_time_and_at_task_start(
    run_dag, mlflow_connection, capsys
):
    with pytest.raises(ConfigurationError, match="not both"):
        PachydermRollbackOperator(task_id="t", model_name="m", alias="a", to_run_id="r", to_commit="x@1")
    with pytest.raises(ConfigurationError, match="give one of to_run_id or to_commit"):
        PachydermRollbackOperator(task_id="t", model_name="m", alias="a")
    with pytest.raises(TypeError):
        PachydermRollbackOperator(task_id="t", to_run_id="r")  # model_name and alias have no default

    # templates that render to nothing: the task fails at start, naming both parameters
    dag = _rollback_dag(model_name="m", alias="a", to_run_id="{{ '' }}", to_commit="{{ none }}")
    capsys.readouterr()
    dr = run_dag(dag)
    assert dr.get_task_instance("rollback").state == "failed"
    assert "give exactly one of to_run_id or to_commit; rendered to_run_id=''" in capsys.readouterr().out


def test_rollback_dag_forms_refuse_a_missing_or_malformed_target(dagbag):
    """The trigger form validates ``to`` (run id or [project/]repo@commit) before any run exists."""
    from airflow.sdk.exceptions import ParamValidationError

    for dag_id in ("fraud_model_rollback", "churn_model_rollback"):
        dag = dagbag.get_dag(dag_id)
        assert [type(t).__name__ for t in dag.tasks] == ["PachydermRollbackOperator"]
        for bad in (None, "", "abc", "raw_data@", "a b@c"):
            params = copy.deepcopy(dag.params)
            with pytest.raises(ParamValidationError):  # setting a value validates it too
                if bad is not None:
                    params["to"] = bad
                params.validate()
        for good in ("0" * 32, "raw_data@" + "1" * 32, "research/events@master"):
            params = copy.deepcopy(dag.params)
            params["to"] = good
            assert params.validate()["to"] == good
