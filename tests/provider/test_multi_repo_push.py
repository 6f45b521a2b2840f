"""Several repos pushed as ONE commit set (PachydermPutFilesOperator ``files=``) into a project of
their own, feeding a ``join`` pipeline: real pachd-lite, real Airflow dag.test()."""

from __future__ import annotations

import json

import pendulum
import pytest
from airflow.listeners import hookimpl
from airflow.sdk import DAG
from pachyderm_sdk.api import pfs, pps

from pachflow.exceptions import ConfigurationError, PachydermNotFound
from pachflow.operators.files import PachydermPutFilesOperator
from pachflow.operators.pipelines import PachydermApplyPipelinesOperator
from pachflow.upload import RepoUpload, plan_upload, push_commit_set
from tests.fixtures.pachd import unique_name

START = pendulum.datetime(2026, 1, 1, tz="UTC")

# one datum per key present in both repos: out/<key>.csv = the events file, then the labels file
JOIN = (
    "import pathlib\n"
    "ev, lb = pathlib.Path('/pfs/events'), pathlib.Path('/pfs/labels')\n"
    "for f in ev.glob('*.csv'):\n"
    "    (pathlib.Path('/pfs/out') / f.name).write_text(f.read_text() + (lb / f.name).read_text())\n"
)


def _join_spec(name: str, events: str, labels: str) -> dict:
    """A spec naming no project: it goes to the operator's project."""
    side = [
        {"pfs": {"name": key, "repo": repo, "glob": "/(*).csv", "join_on": "$1"}}
        for key, repo in (("events", events), ("labels", labels))
    ]
    return {
        "pipeline": {"name": name},
        "transform": {"cmd": ["python3", "-c", JOIN], "image": "pachflow-tests"},
        "input": {"join": side},
        "datum_tries": 1,
    }


@pytest.fixture
def graph(run_dag, pachyderm_connection, pachd_server, tmp_path):
    """Project ``research-*`` (created by the apply operator) with repos events + labels joined into
    pipeline ``features``; local folders for both repos."""
    names = {k: unique_name(k) for k in ("research", "events", "labels", "features")}
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "features.json").write_text(
        json.dumps(_join_spec(names["features"], names["events"], names["labels"]))
    )
    with DAG(unique_name("apply"), schedule=None, start_date=START) as dag:
        PachydermApplyPipelinesOperator(task_id="apply", specs=str(specs), project=names["research"])
    ti = run_dag(dag).get_task_instance("apply")
    assert ti.state == "success"
    result = ti.xcom_pull(task_ids="apply")
    assert result["created_projects"] == [names["research"]]
    assert sorted(result["created_repos"]) == sorted(
        f"{names['research']}/{names[k]}" for k in ("events", "labels")
    )
    for key in ("events", "labels"):
        (tmp_path / key).mkdir()
    (tmp_path / "events" / "a.csv").write_text("e,1\n")
    (tmp_path / "labels" / "a.csv").write_text("l,0\n")
    return names, tmp_path


def _push(run_dag, names, folder, **kwargs):
    files = {names["events"]: str(folder / "events"), names["labels"]: str(folder / "labels")}
    with DAG(unique_name("push"), schedule=None, start_date=START) as dag:
        PachydermPutFilesOperator(task_id="push", files=files, project=names["research"], **kwargs)
    return run_dag(dag).get_task_instance("push")


def _repo(names, key) -> pfs.Repo:
    return pfs.Repo(name=names[key], type="user", project=pfs.Project(name=names["research"]))


def _head(client, names, key) -> str:
    return client.pfs.inspect_branch(branch=pfs.Branch(repo=_repo(names, key), name="master")).head.id


def _jobs(client, names) -> list[str]:
    pipeline = pps.Pipeline(name=names["features"], project=pfs.Project(name=names["research"]))
    return [j.job.id for j in client.pps.list_job(pipeline=pipeline)]


def _wait_job(client, names, job_id: str) -> pps.JobInfo:
    pipeline = pps.Pipeline(name=names["features"], project=pfs.Project(name=names["research"]))
    return client.pps.inspect_job(job=pps.Job(pipeline=pipeline, id=job_id), wait=True)


def _asset_commits(uri: str) -> list[str]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
            .all()
        )
        return [e.extra["commit_id"] for e in rows]


def test_two_repos_pushed_together_start_one_join_job_on_both_new_commits(run_dag, pachd_server, graph):
    from airflow.utils.state import TaskInstanceState

    client = pachd_server.client()
    names, folder = graph
    before = _jobs(client, names)  # the job creating the pipeline started

    ti = _push(run_dag, names, folder)
    assert ti.state == TaskInstanceState.SUCCESS
    commit_set = ti.xcom_pull(task_ids="push")
    assert _head(client, names, "events") == _head(client, names, "labels") == commit_set
    new_jobs = [j for j in _jobs(client, names) if j not in before]
    assert new_jobs == [commit_set], "exactly one job for the two pushed repos"
    job = _wait_job(client, names, commit_set)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    out = pfs.Commit(
        repo=pfs.Repo(name=names["features"], type="user", project=pfs.Project(name=names["research"])),
        id=commit_set,
    )
    inputs = {(c.repo.name, c.id) for c in client.pfs.inspect_commit(commit=out).direct_provenance}
    assert (names["events"], commit_set) in inputs and (names["labels"], commit_set) in inputs
    joined = client.pfs.pfs_file(pfs.File(commit=out, path="/a.csv")).read()
    assert joined == b"e,1\nl,0\n"
    for key in ("events", "labels"):  # each repo's commit carries its own manifest
        meta = client.pfs.inspect_commit(commit=pfs.Commit(repo=_repo(names, key), id=commit_set)).metadata
        assert list(json.loads(meta["pachflow.upload.manifest"])) == ["/a.csv"]
        uri = f"pachyderm://{names['research']}/{names[key]}@master"  # one asset per repo, real project
        assert _asset_commits(uri) == [commit_set]

    # only labels changed: events is left out of the commit set, its head stays
    (folder / "labels" / "a.csv").write_text("l,1\n")
    ti = _push(run_dag, names, folder)
    second = ti.xcom_pull(task_ids="push")
    assert second != commit_set
    assert _head(client, names, "events") == commit_set and _head(client, names, "labels") == second
    assert set(_jobs(client, names)) - set(before) == {commit_set, second}, "one job for the labels push"
    assert _wait_job(client, names, second).state == pps.JobState.JOB_SUCCESS
    assert _asset_commits(f"pachyderm://{names['research']}/{names['events']}@master") == [commit_set]
    assert _asset_commits(f"pachyderm://{names['research']}/{names['labels']}@master") == [
        commit_set,
        second,
    ]
    out2 = pfs.Commit(repo=out.repo, id=second)
    assert client.pfs.pfs_file(pfs.File(commit=out2, path="/a.csv")).read() == b"e,1\nl,1\n"

    # nothing changed anywhere: skipped, no commit, no job
    ti = _push(run_dag, names, folder)
    assert ti.state == TaskInstanceState.SKIPPED
    assert set(_jobs(client, names)) - set(before) == {commit_set, second}

    # force pushes every repo again, still as one commit set
    third = _push(run_dag, names, folder, force=True).xcom_pull(task_ids="push")
    assert _head(client, names, "events") == _head(client, names, "labels") == third
    assert set(_jobs(client, names)) - set(before) == {commit_set, second, third}


def test_a_failure_mid_push_leaves_every_branch_head_unchanged(run_dag, pachd_server, graph):
    client = pachd_server.client()
    names, folder = graph
    commit_set = _push(run_dag, names, folder).xcom_pull(task_ids="push")
    _wait_job(client, names, commit_set)
    jobs = _jobs(client, names)
    history = {
        k: [c.commit.id for c in client.pfs.list_commit(repo=_repo(names, k))] for k in ("events", "labels")
    }

    (folder / "events" / "b.csv").write_text("e,2\n")
    (folder / "labels" / "b.csv").write_text("l,2\n")
    uploads = [
        RepoUpload(pfs.Branch(repo=_repo(names, k), name="master"), plan_upload(str(folder / k)))
        for k in ("events", "labels")
    ]
    (folder / "labels" / "b.csv").unlink()  # vanishes after planning: the second repo's upload fails
    with pytest.raises(FileNotFoundError):
        push_commit_set(client, uploads)

    assert _head(client, names, "events") == _head(client, names, "labels") == commit_set
    for key in ("events", "labels"):
        listed = [c.commit.id for c in client.pfs.list_commit(repo=_repo(names, key))]
        assert listed == history[key], f"{key} kept a commit of the failed set"
    assert _jobs(client, names) == jobs, "the failed set left a job behind"
    events = pfs.Commit(
        repo=_repo(names, "events"), branch=pfs.Branch(repo=_repo(names, "events"), name="master")
    )
    assert not client.pfs.path_exists(pfs.File(commit=events, path="/b.csv"))


def test_files_is_exclusive_with_repo_and_source_at_parse_time():
    with pytest.raises(ConfigurationError, match=r"not files= and repo= and source="):
        PachydermPutFilesOperator(task_id="both", files={"events": "/x"}, repo="events", source="/x")
    with pytest.raises(ConfigurationError, match=r"not files= and repo="):
        PachydermPutFilesOperator(task_id="both2", files={"events": "/x"}, repo="events")
    with pytest.raises(ConfigurationError, match=r"repo= and source= missing"):
        PachydermPutFilesOperator(task_id="neither")
    with pytest.raises(ConfigurationError, match=r"source= missing"):
        PachydermPutFilesOperator(task_id="half", repo="events")
    with pytest.raises(ConfigurationError, match=r"files\['labels'\] gives no source"):
        PachydermPutFilesOperator(task_id="empty", files={"events": "/x", "labels": ""})


def test_put_files_creates_a_missing_project_or_fails_clearly_without_create_repo(
    run_dag, pachyderm_connection, pachd_server, tmp_path, capsys
):
    from airflow.utils.state import TaskInstanceState

    client = pachd_server.client()
    (tmp_path / "a.csv").write_text("1\n")
    project, repo = unique_name("proj"), unique_name("raw")
    with DAG(unique_name("push"), schedule=None, start_date=START) as dag:
        PachydermPutFilesOperator(
            task_id="strict", source=str(tmp_path), repo=repo, project=project, create_repo=False
        )
    capsys.readouterr()
    ti = run_dag(dag).get_task_instance("strict")
    out = capsys.readouterr()
    assert ti.state == TaskInstanceState.FAILED
    assert f"Pachyderm project '{project}' does not exist (create_repo=False)" in out.out + out.err
    assert not client.pfs.project_exists(pfs.Project(name=project))

    with DAG(unique_name("push"), schedule=None, start_date=START) as dag:
        PachydermPutFilesOperator(task_id="push", source=str(tmp_path), repo=repo, project=project)
    commit_id = run_dag(dag).get_task_instance("push").xcom_pull(task_ids="push")
    branch = pfs.Branch(
        repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)), name="master"
    )
    assert client.pfs.inspect_branch(branch=branch).head.id == commit_id
    assert _asset_commits(f"pachyderm://{project}/{repo}@master") == [commit_id]
    assert issubclass(PachydermNotFound, LookupError)


def test_project_from_the_connection_reaches_assets_and_links(run_dag, pachd_server, tmp_path):
    """No ``project`` on the task: the connection's project is only known at run time, and the asset
    events (through the task's AssetAlias) and the commit link still name it."""
    from tests.fixtures.airflow import airflow_connections, pachyderm_conn

    (tmp_path / "a.csv").write_text("1\n")
    project, repo = unique_name("connproj"), unique_name("raw")
    conn = pachyderm_conn(pachd_server.host, pachd_server.port, project=project, console_url="https://c")
    with DAG(unique_name("push"), schedule=None, start_date=START) as dag:
        op = PachydermPutFilesOperator(task_id="push", source=str(tmp_path), repo=repo)
    assert [o.name for o in op.outlets] == [f"pachyderm/{dag.dag_id}/push"]  # an alias, not a guess
    with airflow_connections(pachyderm_default=conn):
        ti = run_dag(dag).get_task_instance("push")
    commit_id = ti.xcom_pull(task_ids="push")
    assert _asset_commits(f"pachyderm://{project}/{repo}@master") == [commit_id]
    assert _asset_commits(f"pachyderm://default/{repo}@master") == []
    link = ti.xcom_pull(task_ids="push", key="_link_PachydermCommitLink")
    assert link == f"https://c/project/{project}/repos/{repo}/commit/{commit_id}/"


class _ExecutedTasks:
    """An Airflow listener keeping the operator objects that ran (as OpenLineage's listener sees them)."""

    def __init__(self) -> None:
        self.tasks: dict[str, object] = {}

    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance):
        self.tasks[task_instance.task_id] = task_instance.task


@pytest.fixture
def executed_tasks():
    from airflow.sdk.listener import get_listener_manager

    listener = _ExecutedTasks()
    manager = get_listener_manager()
    manager.add_listener(listener)
    yield listener.tasks
    manager.pm.unregister(listener)


def test_openlineage_datasets_name_the_real_project(run_dag, pachd_server, graph, executed_tasks):
    from pachflow.sensors.pachyderm import PachydermCommitSensor

    names, folder = graph
    project = names["research"]
    files = {names["events"]: str(folder / "events"), names["labels"]: str(folder / "labels")}
    with DAG(unique_name("push"), schedule=None, start_date=START) as dag:
        push = PachydermPutFilesOperator(task_id="push", files=files, project=project)
        wait = PachydermCommitSensor(
            task_id="wait",
            repo=names["features"],
            project=project,
            commit_set="{{ ti.xcom_pull(task_ids='push') }}",
            deferrable=False,
            poke_interval=0.2,
            timeout=120,
        )
        push >> wait
    dr = run_dag(dag)
    commit_set = dr.get_task_instance("push").xcom_pull(task_ids="push")
    assert dr.get_task_instance("wait").xcom_pull(task_ids="wait")["project"] == project
    assert [(d.name, d.commit) for d in executed_tasks["push"].openlineage_datasets()["outputs"]] == [
        (f"{project}/{names['events']}@master", commit_set),
        (f"{project}/{names['labels']}@master", commit_set),
    ]
    assert [(d.name, d.commit) for d in executed_tasks["wait"].openlineage_datasets()["inputs"]] == [
        (f"{project}/{names['features']}@master", commit_set)
    ]


def test_a_refused_transaction_starts_no_commit(run_dag, pachd_server, graph):
    """One branch of the set cannot take a commit (a pipeline's output branch): the transaction
    is refused (pachd refuses the StartCommit, pachd-lite the FinishTransaction) and no repo moves."""
    import grpc

    client = pachd_server.client()
    names, folder = graph
    commit_set = _push(run_dag, names, folder).xcom_pull(task_ids="push")
    _wait_job(client, names, commit_set)
    (folder / "events" / "c.csv").write_text("e,3\n")
    output = pfs.Repo(name=names["features"], type="user", project=pfs.Project(name=names["research"]))
    uploads = [
        RepoUpload(
            pfs.Branch(repo=_repo(names, "events"), name="master"), plan_upload(str(folder / "events"))
        ),
        RepoUpload(pfs.Branch(repo=output, name="master"), plan_upload(str(folder / "labels"))),
    ]
    with pytest.raises(grpc.RpcError):
        push_commit_set(client, uploads)
    assert _head(client, names, "events") == commit_set
    assert not list(client.transaction.list_transaction().transaction_info), "the transaction was left open"
