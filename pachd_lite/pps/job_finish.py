"""The end of a job once its datums ran: output and meta commits, then the job's last state.

As pachd 2.12 (worker/pipeline/transform/registry.go, ppsutil.FinishJob, pps/server
transaction_defer.go JobFinisher):

- every datum has a result, none failed: the job goes to ``JOB_FINISHING`` while its output and
  meta commits are built and finished (pachd: while PFS finishes the commits; their state is
  FINISHING meanwhile), then ``JOB_SUCCESS`` — or ``JOB_FAILURE`` with the output commit's error
  when the outputs cannot form a commit (two datums writing one path).
- a datum failed: the job goes straight from RUNNING to ``JOB_FAILURE``; the output commit holds
  what the processed datums wrote and, like the meta commit, is finished with the job's reason as
  its error.

The meta commit gets every datum's meta (pachd_lite.pps.datum_meta) in both cases.
"""

from __future__ import annotations

import time

from pachd_lite.pfs import files
from pachd_lite.pfs.layers import Entry
from pachd_lite.pfs.model import PfsContext
from pachd_lite.pps import datum_meta, jobs


def finish_job(
    ctx: PfsContext, job: jobs.JobRecord, input_files: datum_meta.InputFiles, failure: str = ""
) -> str | None:
    """Write the job's output and meta commits and end it; ``failure``: the reason a datum failed.

    Returns the job's reason ("" on success), or None when the job had already ended (killed or
    deleted meanwhile): then nothing is written."""
    key = (job.project, job.pipeline, job.id)
    if not failure:
        with ctx.db.tx() as conn:
            current = jobs.find_job(conn, *key)
            if current is None or current.terminal:
                return None
            jobs.set_state(conn, current, jobs.FINISHING)
            _mark_finishing(conn, current)
    with ctx.db.read() as conn:
        rows = conn.execute(
            "SELECT path, blob, size, datum_id FROM datum_outputs WHERE project = ? AND pipeline = ? "
            "AND job_id = ? ORDER BY path, datum_id",
            key,
        ).fetchall()
    entries, error = merge_outputs(rows)
    meta_entries, blobs = datum_meta.build(ctx, job, rows, input_files)
    reason = failure or error
    try:
        with ctx.db.tx() as conn:
            current = jobs.find_job(conn, *key)
            if current is None or current.terminal:
                return None
            out_row = jobs.output_commit_row(conn, current)
            meta_row = jobs.meta_commit_row(conn, current)
            if out_row is not None and out_row["finished"] is None and not error:
                files.replace_commit_files(conn, out_row["id"], entries)
            if meta_row is not None and meta_row["finished"] is None:
                files.replace_commit_files(conn, meta_row["id"], meta_entries)
            jobs.end_job(ctx, conn, current, jobs.FAILURE if reason else jobs.SUCCESS, reason)
            return ctx.redact(reason)
    finally:
        for blob in blobs:
            ctx.blobs.release(blob)


def _mark_finishing(conn, job: jobs.JobRecord) -> None:
    """The job's open output and meta commits are FINISHING (InspectCommit shows it)."""
    now = time.time()
    for row in jobs.open_commit_rows(conn, job):
        conn.execute(
            "UPDATE commits SET finishing = COALESCE(finishing, ?), updated_at = ? WHERE id = ?",
            (now, now, row["id"]),
        )


def merge_outputs(rows) -> tuple[list[Entry], str]:
    """The output commit's entries; an error in pachd's words if datums collide."""
    entries: list[Entry] = []
    by_path: dict[str, str] = {}
    for path, blob, size, datum_id in rows:
        if path in by_path and by_path[path] != datum_id:
            return [], (
                f"duplicate path output by different datums ({path} from {by_path[path]} and {path} from {datum_id})"
            )
        if path in by_path:
            continue
        by_path[path] = datum_id
        entries.append(Entry(path, blob, size, datum_id))
    paths = set(by_path)
    for path in paths:
        parent = path.rsplit("/", 1)[0]
        while parent:
            if parent in paths:
                return [], f"file / directory path collision ({parent})"
            parent = parent.rsplit("/", 1)[0]
    return entries, ""
