"""GetLogs' user lines (``user=true``) are what the user code printed, nothing of pachd-lite's own.

pachd 2.12's worker logs a failed try only as its own line (non-master, ``user=false``):
``errored running user code after <d>: <err>`` (src/server/worker/driver/driver.go, RunUserCode);
it has no "datum cancelled" or "datum X failed (try k of n)" line. pachd-lite's words about a
datum (timeout, cancel, a datum it could not handle) are worker lines, or only in the reason.
"""

from __future__ import annotations

import re

from pachyderm_sdk.api import pps

from tests.fixtures.pachd import unique_name
from tests.pachd_lite.sdk_helpers import create_pipeline, create_repo, job, put

ERRORED = re.compile(r"^errored running user code after \S+: (.*)$")


def _lines(client, pipeline: str, job_id: str):
    return list(client.pps.get_logs(job=pps.Job(pipeline=pps.Pipeline(name=pipeline), id=job_id)))


def test_failed_tries_log_only_the_users_lines_and_pachds_worker_lines(pachd_client):
    data, name = create_repo(pachd_client, "ulog"), unique_name("ulog")
    cmd = ["sh", "-c", "echo 'boom: bad row 7'; exit 3"]
    create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, cmd, datumTries=2)
    commit = put(pachd_client, data, {"/a": b"a"})
    info = job(pachd_client, name, commit.id)
    assert info.state == pps.JobState.JOB_FAILURE
    assert "user code exited with code 3" in info.reason and "boom: bad row 7" in info.reason
    lines = _lines(pachd_client, name, commit.id)
    assert [m.message for m in lines if m.user] == ["boom: bad row 7", "boom: bad row 7"]
    errored = [ERRORED.match(m.message) for m in lines if not m.user and m.datum_id]
    assert [m.group(1) for m in errored if m] == ["exit status 3", "exit status 3"]
    assert not any("failed (try" in m.message for m in lines)


def test_a_timed_out_datum_has_no_pachd_lite_line_among_the_users(pachd_client):
    data, name = create_repo(pachd_client, "ulogt"), unique_name("ulogt")
    cmd = ["sh", "-c", "echo started; sleep 30"]
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, cmd, datumTries=1, datumTimeout="1s"
    )
    commit = put(pachd_client, data, {"/a": b"a"})
    info = job(pachd_client, name, commit.id)
    assert info.state == pps.JobState.JOB_FAILURE and "datum timed out after 1s" in info.reason
    lines = _lines(pachd_client, name, commit.id)
    assert [m.message for m in lines if m.user] == ["started"]
    worker = [m.message for m in lines if not m.user and m.datum_id]
    assert any(w.endswith("because context deadline exceeded") for w in worker), worker
