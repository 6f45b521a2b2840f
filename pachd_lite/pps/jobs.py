"""Jobs: one per commit set on a pipeline's output branch (job id == commit-set id).

Jobs are created inside the transaction that creates their output commit (a PFS
new-commit hook), so a job exists iff its output commit does, also across a crash.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pachyderm_sdk.api import pps

from pachd_lite.errors import NotFound
from pachd_lite.pfs import commits
from pachd_lite.pfs.model import META, USER, CommitRef, PfsContext
from pachd_lite.storage import db

CREATED = int(pps.JobState.JOB_CREATED)
STARTING = int(pps.JobState.JOB_STARTING)
RUNNING = int(pps.JobState.JOB_RUNNING)
FAILURE = int(pps.JobState.JOB_FAILURE)
SUCCESS = int(pps.JobState.JOB_SUCCESS)
KILLED = int(pps.JobState.JOB_KILLED)
FINISHING = int(pps.JobState.JOB_FINISHING)
UNRUNNABLE = int(pps.JobState.JOB_UNRUNNABLE)
TERMINAL = frozenset({SUCCESS, FAILURE, KILLED, UNRUNNABLE})


@dataclass
class JobRecord:
    project: str
    pipeline: str
    id: str
    pipeline_version: int
    state: int
    reason: str
    created: float
    started: float | None
    finished: float | None
    data_total: int
    data_processed: int
    data_skipped: int
    data_failed: int
    data_recovered: int
    restart: int
    seq: int

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def __str__(self) -> str:
        return f"{self.project}/{self.pipeline}@{self.id}"


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(**{k: row[k] for k in row.keys()})  # sqlite3.Row


def find_job(conn: sqlite3.Connection, project: str, pipeline: str, job_id: str) -> JobRecord | None:
    row = conn.execute(
        "SELECT * FROM jobs WHERE project = ? AND pipeline = ? AND id = ?",
        (project or "default", pipeline, job_id),
    ).fetchone()
    return _record(row) if row is not None else None


def require_job(conn: sqlite3.Connection, project: str, pipeline: str, job_id: str) -> JobRecord:
    job = find_job(conn, project, pipeline, job_id)
    if job is None:
        raise NotFound(f"job {project or 'default'}/{pipeline}@{job_id} not found")
    return job


def list_jobs(
    ctx: PfsContext,
    project: str = "",
    pipeline: str = "",
    projects: list[str] | None = None,
    job_set: str = "",
    input_commits: list[CommitRef] | None = None,
) -> list[JobRecord]:
    """Jobs, newest first; filtered by pipeline, projects, job set, or input commits (all of them)."""
    sql, args = "SELECT * FROM jobs WHERE 1 = 1", []
    if pipeline:
        sql += " AND project = ? AND pipeline = ?"
        args += [project or "default", pipeline]
    if projects:
        sql += f" AND project IN ({','.join('?' * len(projects))})"
        args += projects
    if job_set:
        sql += " AND id = ?"
        args.append(job_set)
    sql += " ORDER BY created DESC, seq DESC"
    with ctx.db.read() as conn:
        wanted = set()
        for ref in input_commits or []:
            wanted.add((ref.repo.project, ref.repo.name, commits.resolve_commit(conn, ref)["commit_set"]))
        out = [_record(r) for r in conn.execute(sql, args).fetchall()]
        if wanted:
            out = [j for j in out if wanted <= set(_input_triples(conn, j))]
    return out


def _input_triples(conn: sqlite3.Connection, job: JobRecord) -> list[tuple[str, str, str]]:
    out_row = output_commit_row(conn, job)
    if out_row is None:
        return []
    rows = conn.execute(
        "SELECT r.project, r.name, c.commit_set FROM commit_provenance p JOIN commits c ON c.id = p.from_commit_id "
        "JOIN repos r ON r.id = c.repo_id WHERE p.commit_id = ?",
        (out_row["id"],),
    ).fetchall()
    return [tuple(r) for r in rows]


def _commit_row(conn: sqlite3.Connection, project: str, name: str, repo_type: str, commit_set: str):
    return conn.execute(
        "SELECT c.* FROM commits c JOIN repos r ON r.id = c.repo_id "
        "WHERE r.project = ? AND r.name = ? AND r.type = ? AND c.commit_set = ?",
        (project, name, repo_type, commit_set),
    ).fetchone()


def output_commit_row(conn: sqlite3.Connection, job: JobRecord) -> sqlite3.Row | None:
    return _commit_row(conn, job.project, job.pipeline, USER, job.id)


def meta_commit_row(conn: sqlite3.Connection, job: JobRecord) -> sqlite3.Row | None:
    return _commit_row(conn, job.project, job.pipeline, META, job.id)


def input_commit_rows(conn: sqlite3.Connection, job: JobRecord) -> list[sqlite3.Row]:
    """The output commit's direct provenance except the spec commit: what the job reads."""
    out_row = output_commit_row(conn, job)
    if out_row is None:
        return []
    return conn.execute(
        "SELECT c.*, r.project AS repo_project, r.name AS repo_name, r.type AS repo_type "
        "FROM commit_provenance p JOIN commits c ON c.id = p.from_commit_id JOIN repos r ON r.id = c.repo_id "
        "WHERE p.commit_id = ? AND r.type != 'spec' ORDER BY c.id",
        (out_row["id"],),
    ).fetchall()


def new_commit_hook(ctx: PfsContext) -> Callable[[sqlite3.Connection, list[int]], None]:
    """Create a job for every new commit on a pipeline's output branch (pachd's propagateJobs)."""
    from pachd_lite.pps.pipelines import find_pipeline

    def hook(conn: sqlite3.Connection, commit_ids: list[int]) -> None:
        for commit_id in commit_ids:
            row = conn.execute(
                "SELECT c.commit_set, c.branch_name, c.finished, r.project, r.name, r.type FROM commits c "
                "JOIN repos r ON r.id = c.repo_id WHERE c.id = ?",
                (commit_id,),
            ).fetchone()
            if row is None or row["type"] != USER or row["finished"] is not None:
                continue
            record = find_pipeline(conn, row["project"], row["name"])
            if record is None or row["branch_name"] != record.output_branch:
                continue
            if find_job(conn, row["project"], row["name"], row["commit_set"]) is not None:
                continue
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            conn.execute(
                "INSERT INTO jobs(project, pipeline, id, pipeline_version, state, created, seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row["project"], row["name"], row["commit_set"], record.version, CREATED, time.time(), seq),
            )

    return hook


def set_state(
    conn: sqlite3.Connection, job: JobRecord, state: int, reason: str | None = None, **fields
) -> None:
    sets, args = ["state = ?"], [state]
    if reason is not None:
        sets.append("reason = ?")
        args.append(reason)
    for key, value in fields.items():
        sets.append(f"{key} = ?")
        args.append(value)
    args += [job.project, job.pipeline, job.id]
    conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE project = ? AND pipeline = ? AND id = ?", args)
    job.state = state


def open_commit_rows(conn: sqlite3.Connection, job: JobRecord) -> list[sqlite3.Row]:
    """The job's output and meta commits that are not finished yet."""
    rows = (output_commit_row(conn, job), meta_commit_row(conn, job))
    return [row for row in rows if row is not None and row["finished"] is None]


def end_job(ctx: PfsContext, conn: sqlite3.Connection, job: JobRecord, state: int, reason: str) -> None:
    """Put a job in a terminal state and finish its open output and meta commits: with the reason as
    their error unless the job succeeded."""
    reason = ctx.redact(reason)
    set_state(conn, job, state, reason, finished=time.time())
    error = "" if state == SUCCESS else reason or "job failed"
    for row in open_commit_rows(conn, job):
        commits.finish_commit_row(ctx, conn, row["id"], error=error)


def kill_unfinished(
    ctx: PfsContext, conn: sqlite3.Connection, project: str, pipeline: str, reason: str
) -> None:
    rows = conn.execute(
        f"SELECT * FROM jobs WHERE project = ? AND pipeline = ? AND state NOT IN ({','.join('?' * len(TERMINAL))})",
        (project, pipeline, *TERMINAL),
    ).fetchall()
    for row in rows:
        end_job(ctx, conn, _record(row), KILLED, reason)


def stop_job(ctx: PfsContext, project: str, pipeline: str, job_id: str, reason: str = "") -> None:
    with ctx.db.tx() as conn:
        job = require_job(conn, project, pipeline, job_id)
        if job.terminal:
            return
        end_job(ctx, conn, job, KILLED, reason or "job stopped")


def delete_job(ctx: PfsContext, project: str, pipeline: str, job_id: str) -> None:
    with ctx.db.tx() as conn:
        job = require_job(conn, project, pipeline, job_id)
        if (
            not job.terminal
        ):  # as pachd: stop it (KILLED, output commit finished with the reason), then delete
            end_job(ctx, conn, job, KILLED, "job deleted")
        db.delete_jobs(conn, project=job.project, pipeline=job.pipeline, job_id=job.id)


def get_job(ctx: PfsContext, project: str, pipeline: str, job_id: str) -> JobRecord:
    with ctx.db.read() as conn:
        return require_job(conn, project, pipeline, job_id)


def wait_job(
    ctx: PfsContext, project: str, pipeline: str, job_id: str, alive: Callable[[], bool]
) -> JobRecord:
    """Block until the job is in a terminal state (or the caller goes away)."""
    while True:
        version = ctx.db.version
        job = get_job(ctx, project, pipeline, job_id)
        if job.terminal or not alive():
            return job
        ctx.db.wait_for_change(version, commits.WAIT_SLICE)


def last_job_state(ctx: PfsContext, project: str, pipeline: str) -> int:
    """State of the pipeline's newest job (0, JOB_STATE_UNKNOWN, before its first job)."""
    with ctx.db.read() as conn:
        row = conn.execute(
            "SELECT state FROM jobs WHERE project = ? AND pipeline = ? ORDER BY seq DESC LIMIT 1",
            (project, pipeline),
        ).fetchone()
    return row[0] if row else 0


def subscribe_jobs(
    ctx: PfsContext, project: str, pipeline: str, alive: Callable[[], bool]
) -> Iterator[JobRecord]:
    """Each job of the pipeline once, oldest first, while ``alive()``: the unfinished ones now, then
    every job created later (pachd's SubscribeJob watches the unfinished jobs and skips a job it
    has sent). A later job is sent in its state when first seen, which may already be terminal."""
    seen: set[str] = set()  # every job present at subscribe time, and every job sent since
    first = True
    while alive():
        version = ctx.db.version
        for job in sorted(list_jobs(ctx, project, pipeline), key=lambda j: j.seq):
            if job.id in seen:
                continue
            seen.add(job.id)
            if first and job.terminal:
                continue
            yield job
        first = False
        ctx.db.wait_for_change(version, 1.0)
