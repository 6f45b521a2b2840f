"""Pipelines: create/update (one transaction, as pachd's CreatePipelineInTransaction), inspect,
list, delete, stop/start, rerun.

Creating or updating a pipeline makes an empty USER commit on ``<pipeline>.spec@master`` and
gives the output branch (provenance = every PFS input branch + the spec branch) and the
``.meta`` branch a new AUTO commit in the same commit set, which creates the job.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pachyderm_sdk.api import pps

from pachd_lite.errors import AlreadyExists, FailedPrecondition, NotFound
from pachd_lite.pfs import branches, commits, projects, repos
from pachd_lite.pfs.model import META, SPEC, USER, BranchRef, PfsContext, RepoRef
from pachd_lite.pfs.names import new_commit_set_id, new_id
from pachd_lite.pps import jobs
from pachd_lite.pps import secrets as pipeline_secrets
from pachd_lite.pps.datums import cron_repo, normalize_pfs_input
from pachd_lite.pps.spec import (
    apply_defaults,
    cron_inputs,
    effective_spec_json,
    parse_create_pipeline_request,
    request_to_json,
    secret_refs,
    validate_request,
)
from pachd_lite.storage import db

PIPELINE_STARTING = int(pps.PipelineState.PIPELINE_STARTING)
PIPELINE_RUNNING = int(pps.PipelineState.PIPELINE_RUNNING)
PIPELINE_PAUSED = int(pps.PipelineState.PIPELINE_PAUSED)


@functools.lru_cache(maxsize=512)
def _parse_effective(text: str) -> pps.CreatePipelineRequest:
    return parse_create_pipeline_request(text)


@dataclass
class PipelineRecord:
    project: str
    name: str
    version: int
    spec_commit_set: str
    state: int
    stopped: bool
    reason: str
    salt: str
    user_spec_json: str
    effective_spec_json: str
    created_at: float
    metadata: dict[str, str]

    @property
    def spec(self) -> pps.CreatePipelineRequest:
        """The effective spec (defaults applied). Shared and cached: do not modify it."""
        return _parse_effective(self.effective_spec_json)

    @property
    def output_branch(self) -> str:
        return self.spec.output_branch or "master"

    @property
    def output_repo(self) -> RepoRef:
        return RepoRef(self.project, self.name, USER)

    @property
    def meta_repo(self) -> RepoRef:
        return RepoRef(self.project, self.name, META)

    @property
    def spec_repo(self) -> RepoRef:
        return RepoRef(self.project, self.name, SPEC)

    def __str__(self) -> str:
        return f"{self.project}/{self.name}"


def _record(row: sqlite3.Row) -> PipelineRecord:
    return PipelineRecord(
        project=row["project"],
        name=row["name"],
        version=row["version"],
        spec_commit_set=row["spec_commit_set"],
        state=row["state"],
        stopped=bool(row["stopped"]),
        reason=row["reason"],
        salt=row["salt"],
        user_spec_json=row["user_spec_json"],
        effective_spec_json=row["effective_spec_json"],
        created_at=row["created_at"],
        metadata=json.loads(row["metadata"]),
    )


def find_pipeline(
    conn: sqlite3.Connection, project: str, name: str, version: int = 0
) -> PipelineRecord | None:
    if version:
        row = conn.execute(
            "SELECT * FROM pipelines WHERE project = ? AND name = ? AND version = ?", (project, name, version)
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT * FROM pipelines WHERE project = ? AND name = ? ORDER BY version DESC LIMIT 1",
            (project, name),
        ).fetchone()
    return _record(row) if row is not None else None


def require_pipeline(conn: sqlite3.Connection, project: str, name: str, version: int = 0) -> PipelineRecord:
    record = find_pipeline(conn, project or "default", name, version)
    if record is None:
        raise NotFound(f"pipeline {project or 'default'}/{name} not found")
    return record


def job_pipeline(ctx: PfsContext, job: jobs.JobRecord) -> PipelineRecord | None:
    """The pipeline version that made ``job`` (None once the pipeline is deleted)."""
    with ctx.db.read() as conn:
        return find_pipeline(conn, job.project, job.pipeline, job.pipeline_version)


def input_branches(spec: pps.CreatePipelineRequest) -> list[BranchRef]:
    """Every PFS (and cron: its repo's master) input branch of an (effective) spec, in input order,
    without duplicates."""
    out: dict[BranchRef, None] = {}

    def walk(inp: pps.Input) -> None:
        if inp is None:
            return
        if inp.pfs is not None and inp.pfs.repo:
            p = normalize_pfs_input(inp.pfs, spec.pipeline.project.name)
            out[BranchRef(RepoRef(p.project, p.repo, p.repo_type), p.branch)] = None
        if inp.cron is not None and inp.cron.repo:
            out[BranchRef(cron_repo(inp.cron, spec.pipeline.project.name), "master")] = None
        for child in [*inp.cross, *inp.union, *inp.join, *inp.group]:
            walk(child)

    walk(spec.input)
    return list(out)


def _cron_repos(spec: pps.CreatePipelineRequest) -> list[RepoRef]:
    return [cron_repo(c, spec.pipeline.project.name) for c in cron_inputs(spec.input)]


def create_pipeline(
    ctx: PfsContext,
    req: pps.CreatePipelineRequest,
    *,
    update: bool = False,
    reprocess: bool = False,
    dry_run: bool = False,
    user_json: str = "",
) -> str:
    """Create or update a pipeline; returns the effective spec JSON (only that with ``dry_run``)."""
    validate_request(req)
    effective = apply_defaults(req)
    project, name = effective.pipeline.project.name, effective.pipeline.name
    with ctx.db.tx() as conn:
        projects.require_project(conn, project)
        existing = find_pipeline(conn, project, name)
        if existing is not None and not update:
            raise AlreadyExists(f"pipeline {project}/{name} already exists")
        if existing is None and repos.find_repo(conn, RepoRef(project, name, USER)) is not None:
            raise AlreadyExists(
                f'pipeline "{project}/{name}" cannot be created because a repo with the same name already exists'
            )
        pipeline_secrets.check_refs(conn, secret_refs(req))
        inputs = input_branches(effective)
        tick_repos = _cron_repos(effective)
        for branch in inputs:
            if repos.find_repo(conn, branch.repo) is None and branch.repo not in tick_repos:
                raise NotFound(f"input repo {branch.repo} of pipeline {project}/{name} not found")
        if req.salt and not reprocess:
            salt = req.salt
        elif existing is not None and not reprocess:
            salt = existing.salt
        else:
            salt = new_id()
        effective.salt = salt
        eff_json = effective_spec_json(effective)
        if dry_run:
            return eff_json
        commit_set = new_commit_set_id()
        version = (existing.version + 1) if existing is not None else 1
        stopped = existing.stopped if existing is not None else False
        now = time.time()
        conn.execute(
            "INSERT INTO pipelines(project, name, version, spec_commit_set, state, stopped, salt, user_spec_json, "
            "effective_spec_json, created_at, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                project,
                name,
                version,
                commit_set,
                PIPELINE_PAUSED if stopped else PIPELINE_RUNNING,
                int(stopped),
                salt,
                user_json or request_to_json(req),
                eff_json,
                now,
                json.dumps(existing.metadata) if existing is not None else "{}",
            ),
        )
        if existing is not None:
            jobs.kill_unfinished(ctx, conn, project, name, "all jobs killed because pipeline was updated")
        for ref in (RepoRef(project, name, USER), RepoRef(project, name, SPEC), RepoRef(project, name, META)):
            if repos.find_repo(conn, ref) is None:
                repos.create_repo_in(conn, ref, effective.description if ref.type == USER else "")
        for ref in tick_repos:  # pachd: created with the pipeline if missing
            if repos.find_repo(conn, ref) is None:
                repos.create_repo_in(conn, ref, f"Cron tick repo for pipeline {project}/{name}.")
        spec_branch = BranchRef(RepoRef(project, name, SPEC), "master")
        spec_commit = commits.start_commit_in(ctx, conn, spec_branch, commit_set=commit_set, internal=True)
        commits.finish_commit_row(ctx, conn, spec_commit)
        provenance = [*inputs, spec_branch]
        output_branch = effective.output_branch or "master"
        for repo_type in (USER, META):  # the output and meta branches share provenance
            branches.create_branch_in(
                ctx,
                conn,
                BranchRef(RepoRef(project, name, repo_type), output_branch),
                provenance=provenance,
                commit_set=commit_set,
            )
        return eff_json


def list_pipelines(
    ctx: PfsContext,
    project: str = "",
    name: str = "",
    history: int = 0,
    projects_filter: list[str] | None = None,
) -> list[PipelineRecord]:
    """Latest versions (``history``: also that many earlier ones; -1: all), newest first."""
    with ctx.db.read() as conn:
        rows = conn.execute("SELECT * FROM pipelines ORDER BY created_at DESC, version DESC").fetchall()
    out: list[PipelineRecord] = []
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        rec = _record(row)
        if name and (rec.name != name or rec.project != (project or "default")):
            continue
        if projects_filter and rec.project not in projects_filter:
            continue
        key = (rec.project, rec.name)
        count = seen.get(key, 0)
        if count == 0 or history < 0 or count <= history:
            out.append(rec)
        seen[key] = count + 1
    return out


def get_pipeline(ctx: PfsContext, project: str, name: str) -> PipelineRecord:
    with ctx.db.read() as conn:
        return require_pipeline(conn, project, name)


def delete_pipeline(
    ctx: PfsContext, project: str, name: str, force: bool = False, keep_repo: bool = False
) -> None:
    with ctx.db.tx() as conn:
        record = require_pipeline(conn, project, name)
        out_repo = repos.find_repo(conn, record.output_repo)
        if out_repo is not None and not force:
            dependents = conn.execute(
                "SELECT DISTINCT r.project, r.name FROM branch_provenance p JOIN branches b ON b.id = p.branch_id "
                "JOIN repos r ON r.id = b.repo_id JOIN branches src ON src.id = p.from_branch_id "
                "WHERE src.repo_id = ? AND NOT (r.project = ? AND r.name = ?)",
                (out_repo["id"], record.project, record.name),
            ).fetchall()
            if dependents:
                names = ", ".join(f"{d[0]}/{d[1]}" for d in dependents)
                raise FailedPrecondition(
                    f"cannot delete pipeline {record}: {names} read(s) its output (delete them first or use force)"
                )
        jobs.kill_unfinished(ctx, conn, record.project, record.name, "pipeline deleted")
        db.delete_jobs(conn, project=record.project, pipeline=record.name)
        conn.execute("DELETE FROM pipelines WHERE project = ? AND name = ?", (record.project, record.name))
        for ref in (record.spec_repo, record.meta_repo):
            row = repos.find_repo(conn, ref)
            if row is not None:
                repos.delete_repo_row(conn, row, force=True)
        if out_repo is not None:
            if keep_repo:
                conn.execute(
                    "DELETE FROM branch_provenance WHERE branch_id IN (SELECT id FROM branches WHERE repo_id = ?)",
                    (out_repo["id"],),
                )
            else:
                repos.delete_repo_row(conn, out_repo, force=True)
        for ref in _cron_repos(record.spec):  # pachd deletes tick repos even with keep_repo
            row = repos.find_repo(conn, ref)
            if row is not None:
                repos.delete_repo_row(conn, row, force=True)


def set_stopped(ctx: PfsContext, project: str, name: str, stopped: bool) -> None:
    """Pause or resume a pipeline. Stopping kills its unfinished jobs (JOB_KILLED, as pachd's
    StopPipeline; the scheduler then stops their user code); jobs for commits made while it is
    stopped wait in JOB_CREATED until it starts again."""
    with ctx.db.tx() as conn:
        record = require_pipeline(conn, project, name)
        if stopped:
            jobs.kill_unfinished(ctx, conn, record.project, record.name, "pipeline stopped")
        conn.execute(
            "UPDATE pipelines SET stopped = ?, state = ? WHERE project = ? AND name = ?",
            (int(stopped), PIPELINE_PAUSED if stopped else PIPELINE_RUNNING, record.project, record.name),
        )


def rerun_pipeline(ctx: PfsContext, project: str, name: str, reprocess: bool = False) -> None:
    """Re-create the pipeline from its stored effective spec (update=true): a new spec commit and job."""
    record = get_pipeline(ctx, project, name)
    req = parse_create_pipeline_request(record.effective_spec_json)
    if reprocess:
        req.salt = ""
    create_pipeline(ctx, req, update=True, reprocess=reprocess, user_json=record.user_spec_json)


def iter_output_heads(conn: sqlite3.Connection, record: PipelineRecord) -> Iterator[int]:
    row = branches.find_branch(conn, BranchRef(record.output_repo, record.output_branch))
    if row is not None and row["head_id"] is not None:
        yield row["head_id"]


def get_metadata(conn: sqlite3.Connection, project: str, name: str) -> dict[str, str]:
    """The pipeline's metadata (EditMetadata; NOT_FOUND for an unknown pipeline)."""
    return require_pipeline(conn, project, name).metadata


def set_metadata(conn: sqlite3.Connection, project: str, name: str, metadata: dict[str, str]) -> None:
    """Replace the metadata of the pipeline's current version."""
    record = require_pipeline(conn, project, name)
    conn.execute(
        "UPDATE pipelines SET metadata = ? WHERE project = ? AND name = ? AND version = ?",
        (json.dumps(metadata), record.project, record.name, record.version),
    )
