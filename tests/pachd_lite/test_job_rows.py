"""Deleting a job, a pipeline or a commit set removes every row of its jobs, logs' datum data included."""

from __future__ import annotations

import sqlite3

from pachyderm_sdk.api import pps

from pachd_lite.storage.db import JOB_TABLES
from tests.fixtures.pachd import unique_name
from tests.pachd_lite.sdk_helpers import create_pipeline, create_repo, job, put


def _rows(server, pipeline: str) -> dict[str, int]:
    with sqlite3.connect(server.root / "pachd.sqlite") as conn:
        counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t} WHERE pipeline = ?", (pipeline,)).fetchone()[0]
                  for t in JOB_TABLES}  # fmt: skip
        counts["jobs"] = conn.execute("SELECT COUNT(*) FROM jobs WHERE pipeline = ?", (pipeline,)).fetchone()[
            0
        ]
    return counts


def test_delete_job_and_pipeline_leave_no_job_rows(pachd_server, pachd_client):
    data, name = create_repo(pachd_client, "rows"), unique_name("rows")
    create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, ["true"])
    first = put(pachd_client, data, {"/a": b"1", "/b": b"2"})
    assert job(pachd_client, name, first.id).state == pps.JobState.JOB_SUCCESS
    second = put(pachd_client, data, {"/c": b"3"})
    assert job(pachd_client, name, second.id).state == pps.JobState.JOB_SUCCESS
    before = _rows(pachd_server, name)
    assert before["jobs"] >= 2 and before["log_data"] >= 3 and before["logs"] > 0 and before["datums"] >= 3

    pachd_client.pps.delete_job(job=pps.Job(pipeline=pps.Pipeline(name=name), id=second.id))
    after_job = _rows(pachd_server, name)
    assert after_job["jobs"] == before["jobs"] - 1
    assert 0 < after_job["log_data"] < before["log_data"]  # the deleted job's datum data went with it

    pachd_client.pps.delete_pipeline(pipeline=pps.Pipeline(name=name), force=True)
    assert _rows(pachd_server, name) == dict.fromkeys([*JOB_TABLES, "jobs"], 0)
