"""Helpers for pachd-lite's domain tests."""

from __future__ import annotations

import json
from collections.abc import Callable

from pachd_lite.pfs import commits, repos
from pachd_lite.pfs.model import BranchRef, PfsContext, RepoRef
from pachd_lite.pps import jobs, pipelines
from pachd_lite.pps.spec import parse_create_pipeline_request


def pipeline_with_jobs(ctx: PfsContext, name: str) -> Callable[[], jobs.JobRecord]:
    """Pipeline ``name`` on a new repo ``data`` (glob /*, cmd true), whose jobs are created as the
    server creates them (the new-commit hook) but never run; returns a function that finishes a
    commit on data@master and returns the job it started."""
    ctx.new_commit_hooks.append(jobs.new_commit_hook(ctx))
    data = BranchRef(RepoRef("default", "data"), "master")
    repos.create_repo(ctx, data.repo)
    spec = {"pipeline": {"name": name}, "input": {"pfs": {"repo": "data", "glob": "/*"}}}
    spec["transform"] = {"cmd": ["true"]}
    pipelines.create_pipeline(ctx, parse_create_pipeline_request(json.dumps(spec)))

    def new_job() -> jobs.JobRecord:
        commits.finish_commit(ctx, commits.start_commit(ctx, data).ref)
        return jobs.list_jobs(ctx, "default", name)[0]  # newest first

    return new_job
