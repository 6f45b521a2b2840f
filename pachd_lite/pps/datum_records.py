"""The datum records of jobs (the ``datums`` table) as ListDatum, InspectDatum and GetLogs read
them; the scheduler writes them."""

from __future__ import annotations

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
