"""A running job's datum results: counted as they come, written to the database in batches.

Results are kept in memory and written at most every ``FLUSH_EVERY`` seconds (and at the job's
end), with the job's counters, in one transaction; a result whose write fails is written with
the next flush, never dropped. A skipped datum's outputs are carried forward from its origin job.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from pachyderm_sdk.api import pps

from pachd_lite.pfs import files
from pachd_lite.pfs.model import PfsContext
from pachd_lite.pps import jobs
from pachd_lite.pps.datums import Datum

DATUM_SUCCESS = int(pps.DatumState.SUCCESS)
DATUM_FAILED = int(pps.DatumState.FAILED)
DATUM_SKIPPED = int(pps.DatumState.SKIPPED)
DATUM_RECOVERED = int(pps.DatumState.RECOVERED)
FLUSH_EVERY = 0.5


@dataclass
class DatumResult:
    datum: Datum
    state: int
    reason: str = ""
    outputs: list[files.Entry] = field(default_factory=list)
    origin_job: str = ""


def _inputs_json(datum: Datum) -> str:
    return json.dumps(
        [
            {"name": i.name, "repo": i.repo, "branch": i.branch, "commit": i.commit, "path": i.path, "hash": i.file_hash,
             "size": i.size, "is_dir": i.is_dir, "project": i.project}
            for i in datum.inputs
        ]
    )  # fmt: skip


class JobResults:
    """The results of one job's datums; ``cancel`` is set when a flush finds the job killed."""

    def __init__(self, ctx: PfsContext, job: jobs.JobRecord, cancel: threading.Event) -> None:
        self.ctx = ctx
        self.job = job
        self.cancel = cancel
        self.failure: tuple[Datum, str] | None = None  # the first failed datum and its reason
        self.lock = threading.Lock()
        self._pending: list[DatumResult] = []
        self._last_flush = time.monotonic()
        self.counts: defaultdict[str, int] = defaultdict(int)
        self._done: set[str] = set()  # ids of datums with a result

    def record(self, result: DatumResult) -> None:
        with self.lock:
            self._pending.append(result)
            self._done.add(result.datum.id)
            key = {DATUM_SUCCESS: "processed", DATUM_SKIPPED: "skipped", DATUM_FAILED: "failed"}.get(
                result.state, "recovered"
            )
            self.counts[key] += 1
        self.flush()

    def fail(self, datum: Datum, reason: str) -> None:
        """``datum`` failed; the first failure names the job's."""
        self.record(DatumResult(datum, DATUM_FAILED, reason=reason))
        with self.lock:
            if self.failure is None:
                self.failure = (datum, reason)

    def first_unfinished(self, datums: list[Datum]) -> Datum:
        with self.lock:
            return next((d for d in datums if d.id not in self._done), datums[0])

    def missing(self, datums: list[Datum]) -> list[str]:
        """Ids of ``datums`` without a result."""
        with self.lock:
            return [d.id for d in datums if d.id not in self._done]

    def flush(self, force: bool = False) -> None:
        with self.lock:
            if not force and time.monotonic() - self._last_flush < FLUSH_EVERY:
                return
            pending, self._pending = self._pending, []
            self._last_flush = time.monotonic()
            counts = dict(self.counts)
        try:
            self._write(pending, counts)
        except BaseException:
            with self.lock:  # written with the next flush, never dropped
                self._pending[:0] = pending
            raise

    def _write(self, pending: list[DatumResult], counts: dict[str, int]) -> None:
        key = (self.job.project, self.job.pipeline, self.job.id)
        with self.ctx.db.tx() as conn:
            job = jobs.find_job(conn, *key)
            if job is None or job.state == jobs.KILLED:
                self.cancel.set()
                return
            for r in pending:
                conn.execute(
                    "INSERT OR REPLACE INTO datums(project, pipeline, job_id, datum_id, hash, state, origin_job, "
                    "reason, inputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        *key,
                        r.datum.id,
                        r.datum.hash,
                        r.state,
                        r.origin_job or self.job.id,
                        self.ctx.redact(r.reason),
                        _inputs_json(r.datum),
                    ),
                )
                if r.state == DATUM_SKIPPED:
                    conn.execute(
                        "INSERT INTO datum_outputs(project, pipeline, job_id, datum_id, path, blob, size) "
                        "SELECT project, pipeline, ?, datum_id, path, blob, size FROM datum_outputs "
                        "WHERE project = ? AND pipeline = ? AND job_id = ? AND datum_id = ?",
                        (self.job.id, self.job.project, self.job.pipeline, r.origin_job, r.datum.id),
                    )
                else:
                    conn.executemany(
                        "INSERT INTO datum_outputs(project, pipeline, job_id, datum_id, path, blob, size) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [(*key, r.datum.id, e.path, e.blob, e.size) for e in r.outputs],
                    )
            conn.execute(
                "UPDATE jobs SET data_processed = ?, data_skipped = ?, data_failed = ?, data_recovered = ? "
                "WHERE project = ? AND pipeline = ? AND id = ?",
                (counts.get("processed", 0), counts.get("skipped", 0), counts.get("failed", 0),
                 counts.get("recovered", 0), *key),
            )  # fmt: skip
