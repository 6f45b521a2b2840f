"""Blob garbage collection while the server runs.

Whatever removes file references (deleting a repo or project, dropping or clearing commits,
deleting a pipeline) calls :func:`note_garbage` inside its transaction; a background thread then
deletes the blobs nothing refers to any more, so a delete frees disk space at once instead of at
the next start. The set of references is read under the metadata lock and the blob store keeps
blobs whose writers have not recorded them yet (pins), so a concurrent upload never loses its blob.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from pachd_lite.pfs.model import PfsContext

log = logging.getLogger("pachd_lite.gc")

FLAG = "gc_wanted"
DEBOUNCE = 0.2  # seconds to wait after a delete, so a burst of deletes makes one collection
RETRY = 60.0  # seconds until the next try when pinned blobs were kept


def note_garbage(conn: sqlite3.Connection) -> None:
    """Record, in the caller's transaction, that blobs may have lost their last reference."""
    conn.execute("INSERT OR REPLACE INTO cluster(key, value) VALUES (?, '1')", (FLAG,))


def referenced_blobs(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT blob FROM files UNION SELECT blob FROM datum_outputs")}


def collect(ctx: PfsContext, idle: bool = False) -> tuple[int, int, int]:
    """One collection; ``idle``: nothing is writing (start-up). Returns (removed, bytes, kept)."""
    with ctx.db.tx() as conn:
        referenced = referenced_blobs(conn)
        read_at = None if idle else time.monotonic()
        conn.execute("DELETE FROM cluster WHERE key = ?", (FLAG,))
    removed, freed, kept = ctx.blobs.collect_garbage(referenced, read_at)
    if removed:
        log.info("removed %d unreferenced blob(s), %.1f MB", removed, freed / 1e6)
    return removed, freed, kept


class Collector:
    """The background thread: collects after :func:`note_garbage`, retries while blobs stay pinned."""

    def __init__(self, ctx: PfsContext) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="blob-gc", daemon=True)
        self._retry_at: float | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.ctx.db.changed:
            self.ctx.db.changed.notify_all()
        self._thread.join(10)

    def _wanted(self) -> bool:
        with self.ctx.db.read() as conn:
            if conn.execute("SELECT 1 FROM cluster WHERE key = ?", (FLAG,)).fetchone() is not None:
                return True
        return self._retry_at is not None and time.monotonic() >= self._retry_at

    def _loop(self) -> None:
        version = -1
        while not self._stop.is_set():
            version = self.ctx.db.wait_for_change(version, 5.0)
            if self._stop.is_set():
                return
            try:
                if not self._wanted():
                    continue
                self._stop.wait(DEBOUNCE)
                _removed, _freed, kept = collect(self.ctx)
                self._retry_at = time.monotonic() + RETRY if kept else None
            except Exception:  # never take the server down; start-up collects anyway
                log.exception("blob garbage collection failed")
