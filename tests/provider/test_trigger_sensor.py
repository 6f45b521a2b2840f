"""PachydermCommitTrigger and PachydermCommitSensor against a real pachd-lite.

Commits on a plain repo need only PFS; the fail-fast tests run a real (failing) pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pendulum
import pytest
from airflow.sdk import DAG
from pachyderm_sdk.api import pfs

from pachflow.sensors.pachyderm import PachydermCommitSensor
from pachflow.triggers.pachyderm import PachydermCommitTrigger
from pachflow.waiting import CommitTarget, WaitEvent
from tests.fixtures.pachd import unique_name

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _repo(client, name: str) -> pfs.Repo:
    r = pfs.Repo(name=name, type="user", project=pfs.Project(name="default"))
    client.pfs.create_repo(repo=r)
    return r


def _first_event(trigger: PachydermCommitTrigger) -> dict:
    async def first():
        gen = trigger.run()
        event = await gen.__anext__()
        await gen.aclose()
        return event.payload

    return asyncio.run(first())


def test_trigger_serialize_round_trip():
    trigger = PachydermCommitTrigger(
        repo="etl", commit_id="a" * 32, project="p", pipeline=True, timeout_s=5.0
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "pachflow.triggers.pachyderm.PachydermCommitTrigger"
    from airflow.sdk.module_loading import import_string

    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["timeout_s"] == 5.0 and kwargs["pipeline"] is True


def test_trigger_fires_when_the_commit_finishes(pachyderm_connection, pachd_server):
    client = pachd_server.client()
    repo = _repo(client, unique_name("raw"))
    commit = client.pfs.start_commit(branch=pfs.Branch(repo=repo, name="master"))
    client.pfs.put_file_from_bytes(commit=commit, path="/a.csv", data=b"x\n")
    timer = threading.Timer(1.0, lambda: client.pfs.finish_commit(commit=commit))
    timer.start()
    event = _first_event(
        PachydermCommitTrigger(
            repo=repo.name, commit_id=commit.id, pipeline=False, timeout_s=30, progress_interval=0.2
        )
    )
    timer.join()
    assert event["status"] == "success"
    assert event["target"]["commit_id"] == commit.id
    assert "commit_id" not in event, "the commit id lives in target only"
    assert WaitEvent.from_dict(event).to_dict() == event  # JSON round trip of the typed event


def test_trigger_has_its_own_deadline(pachyderm_connection, pachd_server):
    client = pachd_server.client()
    repo = _repo(client, unique_name("raw"))
    commit = client.pfs.start_commit(branch=pfs.Branch(repo=repo, name="master"))
    try:
        event = _first_event(
            PachydermCommitTrigger(
                repo=repo.name, commit_id=commit.id, pipeline=False, timeout_s=1.0, progress_interval=0.2
            )
        )
    finally:
        client.pfs.finish_commit(commit=commit)
    assert event["status"] == "timeout"
    assert commit.id in event["message"]


def test_trigger_reports_an_unreachable_pachd(monkeypatch):
    import json
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_PACHYDERM_DEFAULT",
        json.dumps({"conn_type": "pachyderm", "host": "127.0.0.1", "port": port}),
    )
    event = _first_event(PachydermCommitTrigger(repo="r", commit_id="c" * 32, pipeline=False, timeout_s=5))
    assert event["status"] == "error"
    assert f"127.0.0.1:{port}" in event["message"]


class _FinishWhenTriggerRunsInline(logging.Handler):
    """Finish ``commit`` once dag.test() logs that it runs the deferred task's trigger (proves deferral)."""

    def __init__(self, client, commit) -> None:
        super().__init__()
        self.client, self.commit, self.seen = client, commit, []

    def emit(self, record: logging.LogRecord) -> None:
        if "running trigger in line" in record.getMessage() and not self.seen:
            self.seen.append("deferred")
            threading.Timer(0.5, lambda: self.client.pfs.finish_commit(commit=self.commit)).start()


def test_deferred_sensor_in_dag_test_resumes_with_the_event(run_dag, pachyderm_connection, pachd_server):
    from airflow.utils.state import TaskInstanceState

    client = pachd_server.client()
    repo = _repo(client, unique_name("raw"))
    commit = client.pfs.start_commit(branch=pfs.Branch(repo=repo, name="master"))
    with DAG(unique_name("sensor"), schedule=None, start_date=START) as dag:
        PachydermCommitSensor(
            task_id="wait", repo=repo.name, commit_set=commit.id, progress_interval=0.2, timeout=60
        )
    watcher = _FinishWhenTriggerRunsInline(client, commit)
    dag_logger = logging.getLogger("airflow.sdk.definitions.dag")
    dag_logger.addHandler(watcher)
    try:
        dr = run_dag(dag)
    finally:
        dag_logger.removeHandler(watcher)
        if not watcher.seen:
            client.pfs.finish_commit(commit=commit)
    assert watcher.seen == ["deferred"], "the sensor never deferred"
    ti = dr.get_task_instance("wait")
    assert ti.state == TaskInstanceState.SUCCESS
    result = ti.xcom_pull(task_ids="wait")
    assert result["commit_id"] == commit.id and result["repo"] == repo.name


def test_sensor_skips_when_there_is_nothing_to_wait_for_and_fails_on_an_unknown_commit_set(
    run_dag, pachyderm_connection, pachd_server, capsys
):
    from airflow.utils.state import TaskInstanceState

    client = pachd_server.client()
    repo = _repo(client, unique_name("raw"))
    with DAG(unique_name("sensor"), schedule=None, start_date=START) as dag:
        PachydermCommitSensor(task_id="empty", repo=repo.name, commit_set="")
        PachydermCommitSensor(task_id="absent", repo=repo.name, commit_set="f" * 32, missing_grace=0.5)
    capsys.readouterr()
    dr = run_dag(dag)
    out = capsys.readouterr()
    assert dr.get_task_instance("empty").state == TaskInstanceState.SKIPPED
    assert dr.get_task_instance("absent").state == TaskInstanceState.FAILED
    assert f"commit set {'f' * 32} does not exist (waited 0.5 s for it)" in out.out + out.err


def test_sensor_skips_at_once_when_the_commit_set_exists_without_the_repo(
    run_dag, pachyderm_connection, pachd_server
):
    """Pachyderm creates all commits of a set together: no grace wait once the set is there."""
    from airflow.utils.state import TaskInstanceState

    client = pachd_server.client()
    pushed, other = _repo(client, unique_name("raw")), _repo(client, unique_name("other"))
    with client.pfs.commit(branch=pfs.Branch(repo=pushed, name="master")) as c:
        c.put_file_from_bytes("/a", b"1")
    with DAG(unique_name("sensor"), schedule=None, start_date=START) as dag:
        PachydermCommitSensor(task_id="unrelated", repo=other.name, commit_set=c.id, missing_grace=120)
    dr = run_dag(dag)
    ti = dr.get_task_instance("unrelated")
    assert ti.state == TaskInstanceState.SKIPPED
    assert ti.duration < 60, "the sensor waited out missing_grace although the commit set exists"


def test_poke_mode_sensor_on_a_finished_branch_head(run_dag, pachyderm_connection, pachd_server):
    from airflow.utils.state import TaskInstanceState

    client = pachd_server.client()
    repo = _repo(client, unique_name("raw"))
    with client.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as c:
        c.put_file_from_bytes("/a", b"1")
    with DAG(unique_name("sensor"), schedule=None, start_date=START) as dag:
        PachydermCommitSensor(task_id="head", repo=repo.name, deferrable=False, poke_interval=0.2, timeout=30)
    dr = run_dag(dag)
    ti = dr.get_task_instance("head")
    assert ti.state == TaskInstanceState.SUCCESS
    assert ti.xcom_pull(task_ids="head")["commit_id"] == c.id


# -- with pipelines (pachd-lite PPS) -------------------------------------------------------------
def _failing_pipeline(client, name: str, input_repo: str) -> None:
    import json

    spec = {
        "pipeline": {"name": name, "project": {"name": "default"}},
        "transform": {
            "cmd": [
                "python3",
                "-c",
                "import sys; print('boom: bad row 7 in input', flush=True); sys.exit(3)",
            ],
        },
        "input": {"pfs": {"repo": input_repo, "glob": "/*"}},
        "datum_tries": 1,
    }
    client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))


def test_sensor_fails_fast_with_reason_and_log_tail_when_the_job_fails(
    run_dag, pachyderm_connection, pachd_server
):
    from airflow.utils.state import TaskInstanceState

    from pachflow import waiting

    client = pachd_server.client()
    raw = _repo(client, unique_name("raw"))
    pipeline = unique_name("fails")
    _failing_pipeline(client, pipeline, raw.name)
    with client.pfs.commit(branch=pfs.Branch(repo=raw, name="master")) as c:
        c.put_file_from_bytes("/a.csv", b"1\n")

    trigger = PachydermCommitTrigger(
        repo=pipeline, commit_id=c.id, pipeline=True, timeout_s=120, progress_interval=0.5
    )
    event = _first_event(trigger)
    assert event["status"] == "failed"
    assert event["job"]["state"] == "JOB_FAILURE"
    assert event["reason"]
    assert any("boom: bad row 7" in line for line in event["log_tail"])

    with DAG(unique_name("sensor"), schedule=None, start_date=START) as dag:
        PachydermCommitSensor(task_id="wait", repo=pipeline, commit_set=c.id, timeout=120)
    dr = run_dag(dag)
    assert dr.get_task_instance("wait").state == TaskInstanceState.FAILED

    sensor = PachydermCommitSensor(task_id="x", repo=pipeline)
    with pytest.raises(Exception, match="JOB_FAILURE"):
        sensor._finish({}, WaitEvent.from_dict(event))
    assert waiting.FAILED_JOB_STATES[0] == "JOB_FAILURE"


# -- the typed wait event ------------------------------------------------------------------------
def test_wait_event_round_trips_through_json_and_rejects_unknown_status():
    import json

    target = CommitTarget(project="research", repo="features", commit_id="c" * 32, pipeline=True)
    job = {"state": "JOB_FAILURE", "reason": "datum x failed", "data_total": 2, "data_processed": 1,
           "data_skipped": 0, "data_failed": 1, "data_recovered": 0}  # fmt: skip
    event = WaitEvent("failed", target, job, reason="datum x failed", log_tail=("[worker] boom",))
    payload = json.loads(json.dumps(event.to_dict()))
    assert WaitEvent.from_dict(payload) == event
    assert payload["target"] == {"project": "research", "repo": "features", "commit_id": "c" * 32,
                                 "pipeline": True}  # fmt: skip
    with pytest.raises(ValueError, match="status 'finished'"):
        WaitEvent("finished", target)


# -- what does not exist fails, what the commit set does not reach skips -------------------------
def _sensor_run(run_dag, capsys=None, **sensor_kwargs):
    """Run one sensor task; with ``capsys``, also return everything the run printed."""
    with DAG(unique_name("sensor"), schedule=None, start_date=START) as dag:
        PachydermCommitSensor(task_id="wait", timeout=30, **sensor_kwargs)
    if capsys is None:
        return run_dag(dag).get_task_instance("wait")
    capsys.readouterr()
    ti = run_dag(dag).get_task_instance("wait")
    out = capsys.readouterr()
    return ti, out.out + out.err


def test_sensor_fails_on_a_missing_repo_and_a_missing_project(run_dag, pachyderm_connection, capsys):
    from airflow.utils.state import TaskInstanceState

    repo, project = unique_name("nope"), unique_name("noproj")
    ti, text = _sensor_run(run_dag, capsys, repo=repo, commit_set="f" * 32)
    assert ti.state == TaskInstanceState.FAILED
    assert f"Pachyderm project 'default' has no repo '{repo}'" in text

    ti, text = _sensor_run(run_dag, capsys, repo=repo, project=project, commit_set="f" * 32)
    assert ti.state == TaskInstanceState.FAILED
    assert f"Pachyderm project '{project}' does not exist" in text


def test_sensor_without_a_project_extra_fails_for_a_repo_that_exists_only_in_another_project(
    run_dag, pachd_server, capsys
):
    """The silent failure of issue 14: the connection has no ``project`` extra, the repo lives in
    another project; the sensor used to skip ("this change does not reach ...")."""
    from airflow.utils.state import TaskInstanceState

    from tests.fixtures.airflow import airflow_connections

    client = pachd_server.client()
    project, name = unique_name("research"), unique_name("events")
    client.pfs.create_project(project=pfs.Project(name=project))
    repo = pfs.Repo(name=name, type="user", project=pfs.Project(name=project))
    client.pfs.create_repo(repo=repo)
    with client.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as c:
        c.put_file_from_bytes("/a.csv", b"1\n")
    bare = {"conn_type": "pachyderm", "host": pachd_server.host, "port": pachd_server.port}
    with airflow_connections(pachyderm_default=bare):
        ti, text = _sensor_run(run_dag, capsys, repo=name, commit_set=c.id, missing_grace=0.5)
        assert ti.state == TaskInstanceState.FAILED
        assert f"Pachyderm project 'default' has no repo '{name}'" in text
        assert f"exists in project '{project}'" in text
        assert "neither the task nor connection 'pachyderm_default' sets a project" in text

        ok = _sensor_run(run_dag, repo=name, project=project, commit_set=c.id)  # the right project
    assert ok.state == TaskInstanceState.SUCCESS
    assert ok.xcom_pull(task_ids="wait") == {
        "repo": name, "project": project, "commit_id": c.id, "commit_set": c.id, "job": None
    }  # fmt: skip
    link = ok.xcom_pull(task_ids="wait", key="pachyderm_commit")
    assert link["project"] == project and link["repo"] == name
