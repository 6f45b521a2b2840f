"""Every way a job ends is final, once: a job timeout after a failed datum, a kill after one.

pachd 2.12 (src/server/worker/pipeline/transform/registry.go, StartJob) arms a timer at the
job's start; when ``job_timeout`` passes it calls StopJob with the reason " jobtimed out"
(sic), so the job ends JOB_KILLED with that reason and its output and meta commits are
finished with it as their error (src/server/pps/server/api_server.go, stopJob). A failed datum
does not end the job before the others ran (processDatums fails it after DoBatch), so a datum
that failed before the timeout changes nothing: the job is killed, not failed, and never runs
again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pachyderm_sdk.api import pfs, pps

from pachd_lite.pps import datum_meta, jobs
from pachd_lite.pps.job_finish import finish_job
from tests.fixtures.pachd import unique_name
from tests.pachd_lite.domain import pipeline_with_jobs
from tests.pachd_lite.sdk_helpers import create_pipeline, create_repo, put

TERMINAL = {pps.JobState.JOB_SUCCESS, pps.JobState.JOB_FAILURE, pps.JobState.JOB_KILLED}


def _fail_one_sleep_other(client, tmp_path: Path, **extra) -> tuple[str, pfs.Commit, Path]:
    """A pipeline whose datum /fail fails at once and whose datum /slow sleeps (pid in a file)."""
    data, name = create_repo(client, "ends"), unique_name("ends")
    pid_file = tmp_path / "slow.pid"
    script = f"if [ -e /pfs/{data}/fail ]; then exit 3; fi; echo $$ > {pid_file}; exec sleep 30"
    create_pipeline(
        client, name, {"pfs": {"repo": data, "glob": "/*"}}, ["sh", "-c", script],
        parallelismSpec={"constant": 2}, datumTries=1, **extra,
    )  # fmt: skip
    return name, put(client, data, {"/fail": b"f", "/slow": b"s"}), pid_file


def _wait(client, job: pps.Job, until, what: str, timeout: float = 20) -> pps.JobInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = client.pps.inspect_job(job=job)
        if until(info):
            return info
        assert time.monotonic() < deadline, f"{what}; job is {info.state!r} ({info.reason!r})"
        time.sleep(0.1)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _assert_final(client, job: pps.Job, ended: pps.JobInfo, pid_file: Path) -> None:
    """The job stays as it ended (never rerun) and its sleeping user process was killed."""
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _gone(pid):
        assert time.monotonic() < deadline, f"user process {pid} still runs after the job ended"
        time.sleep(0.1)
    os.unlink(pid_file)
    time.sleep(3)  # a rerun would restart the datums within a second
    later = client.pps.inspect_job(job=job)
    assert (later.state, later.reason, later.finished) == (ended.state, ended.reason, ended.finished)
    assert not pid_file.exists(), "the job ran its datums again"
    jobs = [j for j in client.pps.list_job(pipeline=job.pipeline) if j.job.id == job.id]
    assert len(jobs) == 1
    out = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{job.pipeline.name}@{job.id}"))
    assert out.error == ended.reason and out.finished


def test_job_timeout_after_a_failed_datum_kills_the_job_once(pachd_client, tmp_path):
    name, commit, pid_file = _fail_one_sleep_other(pachd_client, tmp_path, jobTimeout="2s")
    job = pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)
    ended = _wait(pachd_client, job, lambda i: i.state in TERMINAL, "the timed-out job never ended")
    assert (ended.state, ended.reason) == (pps.JobState.JOB_KILLED, " jobtimed out")
    assert ended.data_failed == 1
    _assert_final(pachd_client, job, ended, pid_file)


def test_stop_job_after_a_failed_datum_kills_the_job_once(pachd_client, tmp_path):
    name, commit, pid_file = _fail_one_sleep_other(pachd_client, tmp_path)
    job = pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)
    _wait(pachd_client, job, lambda i: i.data_failed == 1 and pid_file.exists(), "no datum failed")
    pachd_client.pps.stop_job(job=job, reason="enough")
    ended = _wait(pachd_client, job, lambda i: i.state in TERMINAL, "the stopped job never ended")
    assert (ended.state, ended.reason) == (pps.JobState.JOB_KILLED, "enough")
    _assert_final(pachd_client, job, ended, pid_file)


def test_a_job_killed_after_its_last_datum_is_not_finished_as_a_success(ctx) -> None:
    """The runner ends a job through ``finish_job``; a StopJob that lands between the last datum
    and that call wins: the job stays JOB_KILLED, its commits keep the kill's error, and the
    runner is told the job ended (None), so it logs "job stopped", not "job succeeded"."""
    new_job = pipeline_with_jobs(ctx, "late")

    killed = new_job()
    jobs.stop_job(ctx, "default", "late", killed.id)
    assert finish_job(ctx, killed, datum_meta.InputFiles([], {})) is None
    ended = jobs.get_job(ctx, "default", "late", killed.id)
    assert ended.state == jobs.KILLED and ended.reason == "job stopped"

    running = new_job()
    assert finish_job(ctx, running, datum_meta.InputFiles([], {})) == ""  # not ended: succeeds
    assert jobs.get_job(ctx, "default", "late", running.id).state == jobs.SUCCESS
