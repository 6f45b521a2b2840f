"""SubscribeJob's job stream in the domain (no gRPC, no scheduler): each job once, new ones always."""

from __future__ import annotations

import time

from pachd_lite.pps import jobs
from tests.pachd_lite.domain import pipeline_with_jobs


def test_a_job_created_after_the_newest_was_deleted_is_still_sent(ctx) -> None:
    """Job sequence numbers are reused once the newest job is deleted; the stream must not take a
    new job with a reused number for one it has already seen."""
    new_job = pipeline_with_jobs(ctx, "watched")
    newest = new_job()
    deadline = time.monotonic() + 5
    stream = jobs.subscribe_jobs(ctx, "default", "watched", alive=lambda: time.monotonic() < deadline)
    unfinished = {j.id for j in jobs.list_jobs(ctx, "default", "watched") if not j.terminal}
    assert newest.id in unfinished and {next(stream).id for _ in unfinished} == unfinished
    jobs.delete_job(ctx, "default", "watched", newest.id)
    later = new_job()
    assert later.seq == newest.seq  # the number is reused
    assert next(stream).id == later.id
