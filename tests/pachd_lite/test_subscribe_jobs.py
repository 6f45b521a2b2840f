"""SubscribeJob's job stream in the domain (no gRPC, no scheduler): each job once, new ones always."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pachd_lite.pfs import commits, repos
from pachd_lite.pfs.model import BranchRef, RepoRef
from pachd_lite.pps import jobs, pipelines
from pachd_lite.pps.spec import parse_create_pipeline_request
from pachd_lite.server import open_context


def test_a_job_created_after_the_newest_was_deleted_is_still_sent(tmp_path: Path) -> None:
    """Job sequence numbers are reused once the newest job is deleted; the stream must not take a
    new job with a reused number for one it has already seen."""
    ctx = open_context(tmp_path / "root")
    try:
        ctx.new_commit_hooks.append(jobs.new_commit_hook(ctx))
        data = BranchRef(RepoRef("default", "data"), "master")
        repos.create_repo(ctx, data.repo)
        spec = {"pipeline": {"name": "watched"}, "input": {"pfs": {"repo": "data", "glob": "/*"}}}
        spec["transform"] = {"cmd": ["true"]}
        pipelines.create_pipeline(ctx, parse_create_pipeline_request(json.dumps(spec)))

        def new_job() -> jobs.JobRecord:
            commits.finish_commit(ctx, commits.start_commit(ctx, data).ref)
            return jobs.list_jobs(ctx, "default", "watched")[0]  # newest first

        newest = new_job()
        deadline = time.monotonic() + 5
        stream = jobs.subscribe_jobs(ctx, "default", "watched", alive=lambda: time.monotonic() < deadline)
        unfinished = {j.id for j in jobs.list_jobs(ctx, "default", "watched") if not j.terminal}
        assert newest.id in unfinished and {next(stream).id for _ in unfinished} == unfinished
        jobs.delete_job(ctx, "default", "watched", newest.id)
        later = new_job()
        assert later.seq == newest.seq  # the number is reused
        assert next(stream).id == later.id
    finally:
        ctx.db.close()
