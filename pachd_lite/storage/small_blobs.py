"""Small blobs kept together in one SQLite file instead of one file each.

A job's datum meta is one small blob per datum, all written when the job finishes. As files,
1,000 datums cost 1,000 inode allocations (plus a rename each), which on ext4 is most of a
short job's finishing time. As rows of one table they cost one transaction and one sync.
pachd packs small files into shared chunks for the same reason.

Content addressing is the blob store's: a row is named by the BLAKE2b-256 hash of its bytes and
never changes. Pins and garbage collection stay with :class:`~pachd_lite.storage.blobs.BlobStore`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Larger content is stored as a file: hard links into sandboxes then cost no copy.
SMALL_BLOB_MAX = 64 * 1024


class SmallBlobs:
    """Rows ``(digest, data)`` in ``path``; writes are durable when :meth:`put_many` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a blob is on disk before the metadata that refers to it is written.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS small_blobs (digest TEXT PRIMARY KEY, data BLOB NOT NULL)"
        )
        self._known = {row[0] for row in self._conn.execute("SELECT digest FROM small_blobs")}

    def __contains__(self, digest: str) -> bool:
        return digest in self._known

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; the caller holds the lock."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def put_many(self, items: dict[str, bytes]) -> None:
        """Store ``digest -> data`` in one transaction (content already stored is left as it is)."""
        with self._lock:
            with self._transaction() as conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO small_blobs (digest, data) VALUES (?, ?)", items.items()
                )
            self._known.update(items)

    def get(self, digest: str) -> bytes | None:
        """The blob's bytes, or None when it is not stored here."""
        if digest not in self._known:
            return None
        with self._lock:
            row = self._conn.execute("SELECT data FROM small_blobs WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else bytes(row[0])

    def digests(self) -> set[str]:
        return set(self._known)

    def delete(self, digests: Iterable[str]) -> int:
        """Remove ``digests``; returns the bytes freed."""
        names = [d for d in digests if d in self._known]
        if not names:
            return 0
        freed = 0
        with self._lock:
            with self._transaction() as conn:
                for digest in names:
                    deleted = conn.execute(
                        "DELETE FROM small_blobs WHERE digest = ? RETURNING length(data)", (digest,)
                    ).fetchall()
                    freed += sum(size for (size,) in deleted)
            self._known.difference_update(names)
        return freed

    def close(self) -> None:
        with self._lock:
            self._conn.close()
