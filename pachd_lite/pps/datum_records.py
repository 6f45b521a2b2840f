"""The datum records of jobs (the ``datums`` table) as ListDatum, InspectDatum, RestartDatum and
GetLogs read them; the scheduler writes them."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pachd_lite.pfs.model import PfsContext
from pachd_lite.pps.jobs import JobRecord


def job_datums(ctx: PfsContext, job: JobRecord, datum_id: str = "") -> list[sqlite3.Row]:
    """The job's datum rows sorted by datum id (only ``datum_id``'s when given)."""
    sql = "SELECT * FROM datums WHERE project = ? AND pipeline = ? AND job_id = ?"
    args: list[Any] = [job.project, job.pipeline, job.id]
    if datum_id:
        sql += " AND datum_id = ?"
        args.append(datum_id)
    with ctx.db.read() as conn:
        return conn.execute(sql + " ORDER BY datum_id", args).fetchall()


def datums_matching(
    ctx: PfsContext, project: str, pipeline: str, job_id: str, filters: list[str]
) -> set[str] | None:
    """Datum ids whose id, input path or input hash (hex) matches every filter (common.MatchDatum),
    among the pipeline's (and job's, when given) datums; None without filters (everything matches)."""
    if not filters:
        return None
    sql, args = "SELECT datum_id, inputs FROM datums WHERE 1 = 1", []
    if pipeline:
        sql += " AND project = ? AND pipeline = ?"
        args += [project or "default", pipeline]
    if job_id:
        sql += " AND job_id = ?"
        args.append(job_id)
    with ctx.db.read() as conn:
        rows = conn.execute(sql, args).fetchall()
    out = set()
    for datum_id, inputs_json in rows:
        keys = {datum_id}
        for inp in json.loads(inputs_json):
            keys.update({inp["path"], inp["hash"]})
        if all(f in keys for f in filters):
            out.add(datum_id)
    return out
