"""The log store: every line user code prints, the worker's own lines (pps.worker_log) and the
scheduler's notes (master lines), by pipeline, job, datum.

Lines are buffered and written in batches (one transaction per batch), so logging does not
cost a disk sync per line; :meth:`LogStore.flush` makes them durable (done before a job ends).

Retention: each job keeps at most ``PACHD_LITE_JOB_LOG_BYTES`` bytes of user-code output
(default 16 MiB). Past that the job's oldest user lines are dropped (down to three quarters of
the cap, so the deletion is not per line) and one master line says so; the newest lines, where
a failure shows, are kept, and so are pachd-lite's own (master) lines. The worker's per-datum lines
count as user-code output (they are a few per datum). Reads (GetLogs) go page by page, so a large
log is streamed, never loaded.

A datum's input files (LogMessage.data) are stored once per datum (``describe_datum``, table
``log_data``), not per line, and joined in when lines are read.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pachd_lite.pfs.model import PfsContext
from pachd_lite.pps.datum_match import DatumFiles, match_datum

FLUSH_INTERVAL = 0.25
FOLLOW_POLL = 0.5
JOB_LOG_BYTES = int(os.environ.get("PACHD_LITE_JOB_LOG_BYTES", str(16 * 1024 * 1024)))
PAGE = 1000  # rows per read
DROPPED_NOTE = "pachd-lite: this job's log passed {cap} bytes; its oldest lines were dropped"

JobKey = tuple[str, str, str]  # project, pipeline, job id


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
    user: bool = True  # False: the worker's own line (or a master line)
    data: DatumFiles = ()  # the datum's input files: (path, hash hex)


def _size(message: str) -> int:
    return len(message.encode("utf-8", "surrogatepass"))


class LogStore:
    def __init__(self, ctx: PfsContext, job_log_bytes: int = JOB_LOG_BYTES) -> None:
        self.ctx = ctx
        self.cap = job_log_bytes
        self._buf: list[tuple] = []
        self._data: list[tuple] = []  # (project, pipeline, job_id, datum_id, files JSON)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time: the byte counts stay exact
        self._stored: dict[JobKey, int] = {}  # bytes of messages in the database, per job
        self._noted: set[JobKey] = set()  # jobs whose log already says lines were dropped
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flusher, name="pps-logs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.flush()

    def append(
        self,
        project: str,
        pipeline: str,
        job_id: str,
        datum_id: str,
        message: str,
        master: bool = False,
        user: bool = True,
    ) -> None:
        with self._lock:
            self._buf.append(
                (project, pipeline, job_id, datum_id, int(master), time.time(), self.ctx.redact(message),
                 int(user and not master))
            )  # fmt: skip

    def describe_datum(
        self, project: str, pipeline: str, job_id: str, datum_id: str, files: DatumFiles
    ) -> None:
        """Record a datum's input files once: every line of the datum is read with them."""
        with self._lock:
            self._data.append((project, pipeline, job_id, datum_id, json.dumps([list(f) for f in files])))

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                rows, self._buf = self._buf, []
                described, self._data = self._data, []
            if not rows and not described:
                return
            rows, truncated = self._within_cap(rows)
            added = self._added(rows)
            with self.ctx.db.tx() as conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO log_data(project, pipeline, job_id, datum_id, files) VALUES (?, ?, ?, ?, ?)",
                    described,
                )
                before = {key: self._stored_bytes(conn, key) for key in added}
                conn.executemany(
                    "INSERT INTO logs(project, pipeline, job_id, datum_id, master, ts, message, user) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                for key, size in added.items():
                    total = before[key] + size
                    if total > self.cap:
                        total -= self._drop_oldest(conn, key, total - self.cap * 3 // 4)
                        truncated.add(key)
                    self._stored[key] = total
                for key in truncated:
                    self._note_drop(conn, key)

    def _within_cap(self, rows: list[tuple]) -> tuple[list[tuple], set[JobKey]]:
        """Of one batch, at most ``cap`` bytes per job (the newest lines); and the jobs cut."""
        added = self._added(rows)
        if all(size <= self.cap for size in added.values()):
            return rows, set()
        budget = dict.fromkeys(added, self.cap)
        kept: list[tuple] = []
        cut: set[JobKey] = set()
        for row in reversed(rows):
            key = row[:3]
            if not row[4]:
                budget[key] -= _size(row[6])
            if row[4] or budget[key] >= 0:
                kept.append(row)
            else:
                cut.add(key)
        kept.reverse()
        return kept, cut

    @staticmethod
    def _added(rows: list[tuple]) -> dict[JobKey, int]:
        added: dict[JobKey, int] = defaultdict(int)
        for row in rows:
            if not row[4]:  # master lines (pachd-lite's own, a few per job) are always kept
                added[row[:3]] += _size(row[6])
        return added

    def _stored_bytes(self, conn, key: JobKey) -> int:
        if key not in self._stored:  # the first flush for this job since start: count what is there
            row = conn.execute(
                "SELECT COALESCE(SUM(LENGTH(CAST(message AS BLOB))), 0) FROM logs "
                "WHERE project = ? AND pipeline = ? AND job_id = ? AND master = 0",
                key,
            ).fetchone()
            self._stored[key] = row[0]
        return self._stored[key]

    def _drop_oldest(self, conn, key: JobKey, at_least: int) -> int:
        """Delete the job's oldest lines, ``at_least`` bytes of them; return the bytes deleted."""
        dropped, last_id = 0, None
        cursor = conn.execute(
            "SELECT id, LENGTH(CAST(message AS BLOB)) FROM logs WHERE project = ? AND pipeline = ? "
            "AND job_id = ? AND master = 0 ORDER BY id",
            key,
        )
        for row_id, size in cursor:
            if dropped >= at_least:
                break
            dropped += size
            last_id = row_id
        cursor.close()
        if last_id is not None:
            conn.execute(
                "DELETE FROM logs WHERE project = ? AND pipeline = ? AND job_id = ? AND master = 0 AND id <= ?",
                (*key, last_id),
            )
        return dropped

    def _note_drop(self, conn, key: JobKey) -> None:
        if key in self._noted:
            return
        self._noted.add(key)
        note = DROPPED_NOTE.format(cap=self.cap)
        conn.execute(
            "INSERT INTO logs(project, pipeline, job_id, datum_id, master, ts, message, user) "
            "VALUES (?, ?, ?, '', 1, ?, ?, 0)",
            (*key, time.time(), note),
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
        data_filters: list[str] | None = None,
    ) -> Iterator[LogLine]:
        """Matching lines in order, read a page at a time; ``tail`` keeps the last N; ``follow``
        keeps streaming new ones; ``data_filters`` keeps the lines whose datum's files match them
        all (pachd's common.MatchDatum: a line without a datum matches no filter)."""
        self.flush()
        where, args = ["master = ?"], [1 if master else 0]
        if pipeline:
            where.append("project = ? AND pipeline = ?")
            args += [project or "default", pipeline]
        if job_id:
            where.append("job_id = ?")
            args.append(job_id)
        if datum_id:
            where.append("datum_id = ?")
            args.append(datum_id)
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        condition = " AND ".join(where)

        matched: dict[DatumFiles, bool] = {}  # a datum's lines share its files: match them once

        def wanted(line: LogLine) -> bool:
            if not data_filters:
                return True
            if line.data not in matched:
                matched[line.data] = match_datum(data_filters, line.data)
            return matched[line.data]

        last_id = 0
        if tail:
            lines = self._last(condition, args, tail, wanted)
            yield from lines
            last_id = lines[-1].id if lines else self._max_id()
        while True:
            while True:
                page = self._page(f"{condition} AND id > ? ORDER BY id LIMIT {PAGE}", [*args, last_id])
                if not page:
                    break
                last_id = page[-1].id
                yield from (line for line in page if wanted(line))
            if not follow or not alive():
                return
            time.sleep(FOLLOW_POLL)
            self.flush()

    def _page(self, where: str, args: list) -> list[LogLine]:
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                "SELECT logs.*, log_data.files FROM logs LEFT JOIN log_data "
                f"USING (project, pipeline, job_id, datum_id) WHERE {where}",
                args,
            ).fetchall()
        parsed: dict[str, DatumFiles] = {}  # one datum's lines share its files
        return [
            LogLine(r["project"], r["pipeline"], r["job_id"], r["datum_id"], bool(r["master"]), r["ts"],
                    r["message"], r["id"], bool(r["user"]), _files(parsed, r["files"]))
            for r in rows
        ]  # fmt: skip

    def _last(self, condition: str, args: list, n: int, wanted: Callable[[LogLine], bool]) -> list[LogLine]:
        """The last ``n`` wanted lines, read backwards a page at a time."""
        found: list[LogLine] = []
        before = None
        while len(found) < n:
            bound = " AND id < ?" if before is not None else ""
            page = self._page(
                f"{condition}{bound} ORDER BY id DESC LIMIT {PAGE}", [*args, *([before] if bound else [])]
            )
            if not page:
                break
            before = page[-1].id
            found.extend(line for line in page if wanted(line))
        return list(reversed(found[:n]))

    def _max_id(self) -> int:
        with self.ctx.db.read() as conn:
            return conn.execute("SELECT COALESCE(MAX(id), 0) FROM logs").fetchone()[0]


def _files(parsed: dict[str, DatumFiles], raw: str | None) -> DatumFiles:
    if not raw:
        return ()
    if raw not in parsed:
        parsed[raw] = tuple((path, hash_hex) for path, hash_hex in json.loads(raw))
    return parsed[raw]
