"""A failed job's Airflow error names the datum's error, and the job's log tail adds pachd's worker
lines about each failed try — no pachd-lite line posing as user code output (real pachd-lite)."""

from __future__ import annotations

import pytest
from airflow.exceptions import AirflowFailException

from pachflow import waiting
from pachflow.sensors.pachyderm import PachydermCommitSensor
from pachflow.waiting import CommitTarget
from tests.fixtures.pachd import unique_name
from tests.pachd_lite.sdk_helpers import create_pipeline, create_repo, job, put


def test_failed_job_error_and_log_tail_show_the_datums_error(pachd_server):
    client = pachd_server.client()
    raw, pipeline = create_repo(client, "tailraw"), unique_name("tail")
    create_pipeline(
        client, pipeline, {"pfs": {"repo": raw, "glob": "/*"}},
        ["sh", "-c", "echo 'boom: bad row 7' >&2; exit 3"], datum_tries=2,
    )  # fmt: skip
    c = put(client, raw, {"/a.csv": b"1\n"})
    job(client, pipeline, c.id)

    event = waiting.check(
        client, CommitTarget(project="default", repo=pipeline, commit_id=c.id, pipeline=True)
    )
    assert event.status == waiting.FAILED
    assert "user code exited with code 3" in event.reason and "boom: bad row 7" in event.reason
    datum_lines = [line for line in event.log_tail if line.startswith("[datum ")]
    assert sum(line.endswith("] boom: bad row 7") for line in datum_lines) == 2  # what user code printed
    errored = [line for line in datum_lines if "errored running user code after" in line]
    assert len(errored) == 2 and all(line.endswith(": exit status 3") for line in errored)
    assert not any("failed (try" in line or "datum cancelled" in line for line in event.log_tail)
    # the sensor's extra log lines: the worker's lines about the tries; the user's line is in the reason
    extra = waiting.new_log_lines(event.log_tail, event.reason)
    assert any("errored running user code" in line for line in extra)
    assert not any(line.endswith("boom: bad row 7") for line in extra)

    sensor = PachydermCommitSensor(task_id="wait", repo=pipeline)
    with pytest.raises(AirflowFailException, match="JOB_FAILURE") as err:
        sensor._finish({}, event)
    assert "user code exited with code 3" in str(err.value) and "boom: bad row 7" in str(err.value)
