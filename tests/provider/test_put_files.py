"""PachydermPutFilesOperator against a real pachd-lite, run by Airflow's dag.test()."""

from __future__ import annotations

import pendulum
import pytest
from airflow.sdk import DAG
from pachyderm_sdk.api import pfs

from pachflow.operators.files import PachydermPutFilesOperator
from pachflow.upload import plan_upload, push_files
from tests.fixtures.pachd import unique_name

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _dag(repo: str, source: str, force: bool = False) -> DAG:
    with DAG(unique_name("put"), schedule=None, start_date=START, catchup=False) as dag:
        PachydermPutFilesOperator(task_id="push", source=source, repo=repo, force=force)
    return dag


def _read(client, repo: str, path: str, commit_id: str = "") -> bytes:
    r = pfs.Repo(name=repo, type="user", project=pfs.Project(name="default"))
    commit = (
        pfs.Commit(repo=r, id=commit_id)
        if commit_id
        else pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name="master"))
    )
    return b"".join(c.value for c in client.pfs.get_file(file=pfs.File(commit=commit, path=path)))


def _commits(client, repo: str) -> list:
    r = pfs.Repo(name=repo, type="user", project=pfs.Project(name="default"))
    return list(client.pfs.list_commit(repo=r))


@pytest.fixture
def raw_dir(tmp_path):
    d = tmp_path / "raw"
    (d / "sub").mkdir(parents=True)
    (d / "day1.csv").write_text("step,type,amount\n1,PAYMENT,10.5\n")
    (d / "sub" / "day2.csv").write_text("step,type,amount\n2,CASH_OUT,99.0\n")
    return d


def test_push_directory_then_skip_then_change_then_force(
    run_dag, pachyderm_connection, pachd_server, raw_dir
):
    from airflow.utils.state import TaskInstanceState

    client = pachd_server.client()
    repo = unique_name("raw")

    dr = run_dag(_dag(repo, str(raw_dir)))
    ti = dr.get_task_instance("push")
    assert ti.state == TaskInstanceState.SUCCESS
    first = ti.xcom_pull(task_ids="push")
    assert len(first) == 32
    assert _read(client, repo, "/day1.csv", first) == (raw_dir / "day1.csv").read_bytes()
    assert _read(client, repo, "/sub/day2.csv", first) == (raw_dir / "sub" / "day2.csv").read_bytes()
    assert len(_commits(client, repo)) == 1

    dr = run_dag(_dag(repo, str(raw_dir)))  # same content: skipped, no new commit
    assert dr.get_task_instance("push").state == TaskInstanceState.SKIPPED
    assert len(_commits(client, repo)) == 1

    (raw_dir / "day1.csv").write_text("step,type,amount\n1,PAYMENT,11.5\n")  # same size, new content
    dr = run_dag(_dag(repo, str(raw_dir / "*.csv")))
    second = dr.get_task_instance("push").xcom_pull(task_ids="push")
    assert second and second != first
    assert _read(client, repo, "/day1.csv") == b"step,type,amount\n1,PAYMENT,11.5\n"
    assert (
        _read(client, repo, "/sub/day2.csv") == (raw_dir / "sub" / "day2.csv").read_bytes()
    )  # kept from before
    assert len(_commits(client, repo)) == 2

    dr = run_dag(_dag(repo, str(raw_dir), force=True))  # forced: a new commit with identical content
    third = dr.get_task_instance("push").xcom_pull(task_ids="push")
    assert third not in (first, second)
    assert len(_commits(client, repo)) == 3


def test_asset_event_carries_the_commit_id(run_dag, pachyderm_connection, raw_dir):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    repo = unique_name("raw")
    dr = run_dag(_dag(repo, str(raw_dir)))
    commit_id = dr.get_task_instance("push").xcom_pull(task_ids="push")
    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == f"pachyderm://default/{repo}@master")
            .all()
        )
        extras = [e.extra for e in events]
    assert [x["commit_id"] for x in extras] == [commit_id]


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        plan_upload(str(tmp_path / "nothing-here" / "*.csv"))


def test_failed_upload_leaves_no_complete_partial_commit(pachd_server, raw_dir):
    client = pachd_server.client()
    repo = unique_name("raw")
    r = pfs.Repo(name=repo, type="user", project=pfs.Project(name="default"))
    client.pfs.create_repo(repo=r)
    branch = pfs.Branch(repo=r, name="master")
    base = push_files(client, branch, plan_upload(str(raw_dir / "sub")))
    assert base.commit_id

    (raw_dir / "day1.csv").write_text("new content that must not land alone\n")
    items = plan_upload(str(raw_dir))
    (raw_dir / "sub" / "day2.csv").unlink()  # vanishes after planning: the second file fails mid-commit
    with pytest.raises(FileNotFoundError):
        push_files(client, branch, items, force=True)

    head = client.pfs.inspect_branch(branch=branch).head
    info = client.pfs.inspect_commit(commit=head)
    # Either the failed commit was dropped (master is back on the last complete commit) or it stays
    # finished with its error set; never a partial commit that looks complete.
    assert head.id == base.commit_id or info.error
    assert [c.commit.id for c in _commits(client, repo) if not c.error] == [base.commit_id]
    assert _read(client, repo, "/day2.csv") == b"step,type,amount\n2,CASH_OUT,99.0\n"


def test_pachyderm_commit_link_uses_the_console_url_of_the_connection(run_dag, pachd_server, raw_dir):
    from tests.fixtures.airflow import airflow_connections, pachyderm_conn

    repo = unique_name("raw")
    conn = pachyderm_conn(
        pachd_server.host, pachd_server.port, project="default", console_url="https://console.example"
    )
    with airflow_connections(pachyderm_default=conn):
        dr = run_dag(_dag(repo, str(raw_dir)))
    ti = dr.get_task_instance("push")
    commit_id = ti.xcom_pull(task_ids="push")
    link = ti.xcom_pull(task_ids="push", key="_link_PachydermCommitLink")
    assert link == f"https://console.example/project/default/repos/{repo}/commit/{commit_id}/"
