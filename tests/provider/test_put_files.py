"""PachydermPutFilesOperator against a real pachd-lite, run by Airflow's dag.test()."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pendulum
import pytest
from airflow.sdk import DAG
from pachyderm_sdk.api import pfs

from pachflow.operators.files import PachydermPutFilesOperator
from pachflow.upload import MANIFEST_KEY, plan_upload, push_files
from tests.fixtures.pachd import unique_name

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _dag(repo: str, source: str, force: bool = False, checksum: bool | str = False) -> DAG:
    with DAG(unique_name("put"), schedule=None, start_date=START, catchup=False) as dag:
        PachydermPutFilesOperator(task_id="push", source=source, repo=repo, force=force, checksum=checksum)
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


# -- unchanged-file detection through the head commit's manifest ---------------------------------
def _branch(client, repo: str) -> pfs.Branch:
    r = pfs.Repo(name=repo, type="user", project=pfs.Project(name="default"))
    if not client.pfs.repo_exists(r):
        client.pfs.create_repo(repo=r)
    return pfs.Branch(repo=r, name="master")


def _age(*paths, seconds: int = 60) -> None:
    """Give files an mtime in the past: fresh files are never trusted by the quick check."""
    then = time.time_ns() - seconds * 1_000_000_000
    for p in paths:
        os.utime(p, ns=(then, then))


def _manifest(client, branch) -> dict:
    head = client.pfs.inspect_branch(branch=branch).head
    return json.loads(client.pfs.inspect_commit(commit=head).metadata[MANIFEST_KEY])


@pytest.fixture
def downloads(monkeypatch, pachd_server):
    """A real client whose get_file calls (the download comparison) are counted."""
    client = pachd_server.client()
    calls: list[str] = []
    real = client.pfs.get_file

    def counting_get_file(*, file, **kw):
        calls.append(file.path)
        return real(file=file, **kw)

    monkeypatch.setattr(client.pfs, "get_file", counting_get_file)
    return client, calls


def test_second_push_uses_the_manifest_and_downloads_nothing(downloads, raw_dir):
    client, calls = downloads
    files = [raw_dir / "day1.csv", raw_dir / "sub" / "day2.csv"]
    _age(*files)
    branch = _branch(client, unique_name("raw"))
    first = push_files(client, branch, plan_upload(str(raw_dir)))
    manifest = _manifest(client, branch)
    assert manifest == {
        f"/{f.relative_to(raw_dir).as_posix()}": {
            "size": f.stat().st_size,
            "mtime_ns": f.stat().st_mtime_ns,
            "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
        }
        for f in files
    }

    again = push_files(client, branch, plan_upload(str(raw_dir)))
    assert (again.commit_id, again.uploaded, again.unchanged) == (None, [], ["/day1.csv", "/sub/day2.csv"])
    assert calls == []
    assert client.pfs.inspect_branch(branch=branch).head.id == first.commit_id


def test_fresh_files_are_hashed_not_trusted_by_mtime(downloads, raw_dir):
    client, calls = downloads
    branch = _branch(client, unique_name("raw"))
    push_files(client, branch, plan_upload(str(raw_dir)))  # files written just now: racy
    assert {e["mtime_ns"] for e in _manifest(client, branch).values()} == {-1}
    (raw_dir / "day1.csv").write_text("step,type,amount\n1,PAYMENT,77.5\n")  # same size, same tick
    result = push_files(client, branch, plan_upload(str(raw_dir)))
    assert result.uploaded == ["/day1.csv"] and calls == []


def test_same_size_change_with_touched_mtime_is_pushed(downloads, raw_dir):
    client, calls = downloads
    day1 = raw_dir / "day1.csv"
    _age(day1, raw_dir / "sub" / "day2.csv", seconds=120)
    branch = _branch(client, unique_name("raw"))
    push_files(client, branch, plan_upload(str(raw_dir)))

    day1.write_text("step,type,amount\n1,PAYMENT,12.5\n")  # same size as before
    _age(day1, seconds=60)
    result = push_files(client, branch, plan_upload(str(raw_dir)))
    assert (result.uploaded, result.unchanged) == (["/day1.csv"], ["/sub/day2.csv"])
    assert _read(client, branch.repo.name, "/day1.csv") == day1.read_bytes()
    assert calls == ["/day1.csv"]  # only the test's own read above
    assert _manifest(client, branch)["/day1.csv"]["sha256"] == hashlib.sha256(day1.read_bytes()).hexdigest()


def test_same_content_with_new_mtime_is_unchanged_by_sha256(downloads, raw_dir):
    client, calls = downloads
    _age(raw_dir / "day1.csv", raw_dir / "sub" / "day2.csv", seconds=120)
    branch = _branch(client, unique_name("raw"))
    first = push_files(client, branch, plan_upload(str(raw_dir)))
    _age(raw_dir / "day1.csv", seconds=60)  # touched, content kept

    result = push_files(client, branch, plan_upload(str(raw_dir)))
    assert (result.commit_id, result.uploaded) == (None, [])
    assert calls == []
    assert client.pfs.inspect_branch(branch=branch).head.id == first.commit_id


def test_head_commit_without_manifest_falls_back_to_downloading(downloads, raw_dir):
    client, calls = downloads
    day1, day2 = raw_dir / "day1.csv", raw_dir / "sub" / "day2.csv"
    _age(day1, day2)
    branch = _branch(client, unique_name("raw"))
    push_files(client, branch, plan_upload(str(raw_dir)))
    # another client (plain SDK, no manifest) rewrites day1 with same-size content, keeps day2
    with client.pfs.commit(branch=branch) as commit:
        commit.put_file_from_bytes(path="/day1.csv", data=b"step,type,amount\n1,PAYMENT,99.9\n")
        commit.put_file_from_bytes(path="/sub/day2.csv", data=day2.read_bytes())
    assert MANIFEST_KEY not in (client.pfs.inspect_commit(commit=commit).metadata or {})

    result = push_files(client, branch, plan_upload(str(raw_dir)))
    assert (result.uploaded, result.unchanged) == (["/day1.csv"], ["/sub/day2.csv"])
    assert sorted(calls) == ["/day1.csv", "/sub/day2.csv"]
    assert _read(client, branch.repo.name, "/day1.csv") == day1.read_bytes()
    assert set(_manifest(client, branch)) == {"/day1.csv", "/sub/day2.csv"}  # describes the whole source

    calls.clear()
    assert push_files(client, branch, plan_upload(str(raw_dir))).commit_id is None
    assert calls == []


def test_checksum_detects_a_change_that_kept_size_and_mtime(
    run_dag, pachyderm_connection, pachd_server, raw_dir
):
    from airflow.utils.state import TaskInstanceState

    client = pachd_server.client()
    repo = unique_name("raw")
    day1 = raw_dir / "day1.csv"
    _age(day1, raw_dir / "sub" / "day2.csv")
    first = run_dag(_dag(repo, str(raw_dir))).get_task_instance("push").xcom_pull(task_ids="push")
    st = day1.stat()
    day1.write_text("step,type,amount\n1,PAYMENT,13.5\n")  # same size ...
    os.utime(day1, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and mtime restored

    dr = run_dag(_dag(repo, str(raw_dir)))  # quick check: trusts size and mtime, as rsync does
    assert dr.get_task_instance("push").state == TaskInstanceState.SKIPPED

    dr = run_dag(_dag(repo, str(raw_dir), checksum="{{ 'true' }}"))
    second = dr.get_task_instance("push").xcom_pull(task_ids="push")
    assert second and second != first
    assert _read(client, repo, "/day1.csv") == day1.read_bytes()
