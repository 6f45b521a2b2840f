"""The log store: every line user code prints (and the scheduler's own notes), by pipeline, job, datum.

Lines are buffered and written in batches (one transaction per batch), so logging does not
cost a disk sync per line; :meth:`LogStore.flush` makes them durable (done before a job ends).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pachd_lite.pfs.model import PfsContext

FLUSH_INTERVAL = 0.25
FOLLOW_POLL = 0.5


@dataclass
class LogLine:
    project: str
    pipeline: str
    job_id: str
    datum_id: str
    master: bool
    ts: float
    message: str
    id: int = 0


class LogStore:
    def __init__(self, ctx: PfsContext) -> None:
        self.ctx = ctx
        self._buf: list[tuple] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flusher, name="pps-logs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.flush()

    def append(
        self, project: str, pipeline: str, job_id: str, datum_id: str, message: str, master: bool = False
    ) -> None:
        with self._lock:
            self._buf.append(
                (project, pipeline, job_id, datum_id, int(master), time.time(), self.ctx.redact(message))
            )

    def flush(self) -> None:
        with self._lock:
            rows, self._buf = self._buf, []
        if rows:
            with self.ctx.db.tx() as conn:
                conn.executemany(
                    "INSERT INTO logs(project, pipeline, job_id, datum_id, master, ts, message) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

    def _flusher(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            try:
                self.flush()
            except Exception:  # retried on the next tick
                time.sleep(FLUSH_INTERVAL)

    def query(
        self,
        project: str = "",
        pipeline: str = "",
        job_id: str = "",
        datum_id: str = "",
        master: bool = False,
        since: float | None = None,
        tail: int = 0,
        follow: bool = False,
        alive: Callable[[], bool] = lambda: True,
        datum_ids: set[str] | None = None,
    ) -> Iterator[LogLine]:
        """Matching lines in order; ``tail`` keeps the last N; ``follow`` keeps streaming new ones;
        ``datum_ids`` (if given) keeps only those datums' lines."""
        self.flush()
        last_id = 0
        first = True
        while True:
            sql, args = "SELECT * FROM logs WHERE id > ?", [last_id]
            if pipeline:
                sql += " AND project = ? AND pipeline = ?"
                args += [project or "default", pipeline]
            if job_id:
                sql += " AND job_id = ?"
                args.append(job_id)
            if datum_id:
                sql += " AND datum_id = ?"
                args.append(datum_id)
            sql += " AND master = ?" if master else " AND master = 0 AND ? = 0"
            args.append(1 if master else 0)
            if since is not None:
                sql += " AND ts >= ?"
                args.append(since)
            sql += " ORDER BY id"
            with self.ctx.db.read() as conn:
                rows = conn.execute(sql, args).fetchall()
            lines = [
                LogLine(
                    r["project"],
                    r["pipeline"],
                    r["job_id"],
                    r["datum_id"],
                    bool(r["master"]),
                    r["ts"],
                    r["message"],
                    r["id"],
                )
                for r in rows
            ]
            if datum_ids is not None:
                lines = [ln for ln in lines if ln.datum_id in datum_ids]
            if rows:
                last_id = rows[-1]["id"]
            if first and tail:
                lines = lines[-tail:]
            first = False
            yield from lines
            if not follow or not alive():
                return
            time.sleep(FOLLOW_POLL)
            self.flush()
