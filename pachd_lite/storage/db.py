"""SQLite (WAL) metadata store: one connection, serialised by a re-entrant lock.

Every write goes through :meth:`Database.tx`, which commits atomically and then wakes
everything waiting on :attr:`Database.changed` (commit waits, subscriptions, the PPS
scheduler): that condition is the notification hook. File content lives in the blob
store, never in SQLite.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS repos (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL REFERENCES projects(name),
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    UNIQUE (project, name, type)
);
CREATE TABLE IF NOT EXISTS branches (
    id INTEGER PRIMARY KEY,
    repo_id INTEGER NOT NULL REFERENCES repos(id),
    name TEXT NOT NULL,
    head_id INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    trigger TEXT NOT NULL DEFAULT '',
    UNIQUE (repo_id, name)
);
CREATE TABLE IF NOT EXISTS branch_provenance (
    branch_id INTEGER NOT NULL,
    from_branch_id INTEGER NOT NULL,
    PRIMARY KEY (branch_id, from_branch_id)
);
CREATE TABLE IF NOT EXISTS commits (
    id INTEGER PRIMARY KEY,
    repo_id INTEGER NOT NULL REFERENCES repos(id),
    commit_set TEXT NOT NULL,
    branch_name TEXT NOT NULL DEFAULT '',
    parent_id INTEGER,
    origin INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finishing REAL,
    finished REAL,
    error TEXT NOT NULL DEFAULT '',
    size_bytes INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL,
    layer_full INTEGER NOT NULL DEFAULT 1,  -- files rows: 1 the whole tree, 0 changes since the parent
    layer_depth INTEGER NOT NULL DEFAULT 0,  -- delta layers since the nearest full one
    UNIQUE (repo_id, commit_set)
);
CREATE INDEX IF NOT EXISTS commits_by_set ON commits(commit_set);
CREATE INDEX IF NOT EXISTS commits_by_parent ON commits(parent_id);
CREATE TABLE IF NOT EXISTS commit_provenance (
    commit_id INTEGER NOT NULL,
    from_commit_id INTEGER NOT NULL,
    PRIMARY KEY (commit_id, from_commit_id)
);
CREATE INDEX IF NOT EXISTS commit_subvenance ON commit_provenance(from_commit_id);
CREATE TABLE IF NOT EXISTS files (
    commit_id INTEGER NOT NULL,
    path TEXT NOT NULL,
    blob TEXT NOT NULL,  -- '' in a delta layer: the path was deleted
    size INTEGER NOT NULL,
    datum TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (commit_id, path)
);
-- open commits a one-off write (ModifyFile on a branch) started; gone when it finishes
CREATE TABLE IF NOT EXISTS one_off_writes (
    commit_id INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS cluster (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pipelines (
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    spec_commit_set TEXT NOT NULL,
    state INTEGER NOT NULL,
    stopped INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    salt TEXT NOT NULL,
    user_spec_json TEXT NOT NULL,
    effective_spec_json TEXT NOT NULL,
    created_at REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (project, name, version)
);
CREATE TABLE IF NOT EXISTS jobs (
    project TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    id TEXT NOT NULL,
    pipeline_version INTEGER NOT NULL,
    state INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    data_total INTEGER NOT NULL DEFAULT 0,
    data_processed INTEGER NOT NULL DEFAULT 0,
    data_skipped INTEGER NOT NULL DEFAULT 0,
    data_failed INTEGER NOT NULL DEFAULT 0,
    data_recovered INTEGER NOT NULL DEFAULT 0,
    restart INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL,
    PRIMARY KEY (project, pipeline, id)
);
CREATE TABLE IF NOT EXISTS datums (
    project TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    job_id TEXT NOT NULL,
    datum_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    state INTEGER NOT NULL,
    origin_job TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    inputs TEXT NOT NULL DEFAULT '[]',
    idx INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project, pipeline, job_id, datum_id)
);
CREATE TABLE IF NOT EXISTS datum_outputs (
    project TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    job_id TEXT NOT NULL,
    datum_id TEXT NOT NULL,
    path TEXT NOT NULL,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS datum_outputs_by_job ON datum_outputs(project, pipeline, job_id, datum_id);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    job_id TEXT NOT NULL,
    datum_id TEXT NOT NULL,
    master INTEGER NOT NULL DEFAULT 0,
    ts REAL NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '[]',
    user INTEGER NOT NULL DEFAULT 1  -- 0: the worker's own line (LogMessage.user false)
);
CREATE INDEX IF NOT EXISTS logs_by_pipeline ON logs(project, pipeline, job_id);
CREATE TABLE IF NOT EXISTS log_data (  -- a datum's input files, for its log lines' `data`
    project TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    job_id TEXT NOT NULL,
    datum_id TEXT NOT NULL,
    files TEXT NOT NULL,  -- JSON [[path, hash hex], ...]
    PRIMARY KEY (project, pipeline, job_id, datum_id)
);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    data TEXT NOT NULL,  -- JSON {key: value}; never logged, never returned by the API
    created_at REAL NOT NULL
);
"""


# Tables whose rows belong to one job (columns project, pipeline, job_id): they go with the job.
JOB_TABLES = ("datums", "datum_outputs", "logs", "log_data")


def delete_jobs(
    conn: sqlite3.Connection,
    *,
    project: str | None = None,
    pipeline: str | None = None,
    job_id: str | None = None,
) -> None:
    """Delete the jobs matching the given columns (at least one) and every row that belongs to them."""
    given = {"project": project, "pipeline": pipeline, "job_id": job_id}
    given = {column: value for column, value in given.items() if value is not None}
    if not given:
        raise ValueError("delete_jobs: give project, pipeline or job_id")
    args = tuple(given.values())
    for table in JOB_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE " + " AND ".join(f"{c} = ?" for c in given), args)
    job_columns = ("id" if c == "job_id" else c for c in given)
    conn.execute("DELETE FROM jobs WHERE " + " AND ".join(f"{c} = ?" for c in job_columns), args)


class Database:
    """The metadata store. ``tx()`` for writes, ``read()`` for consistent reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a finished commit is on disk before FinishCommit returns.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=OFF")
        self._migrate_commits()
        self._conn.executescript(SCHEMA)
        self._migrate_logs()
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self._depth = 0

    def _migrate_commits(self) -> None:
        """Roots made before delta layers: every commit's rows are its whole tree (a full layer)."""
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(commits)")}
        if columns and "layer_full" not in columns:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("ALTER TABLE commits ADD COLUMN layer_full INTEGER NOT NULL DEFAULT 1")
            self._conn.execute("ALTER TABLE commits ADD COLUMN layer_depth INTEGER NOT NULL DEFAULT 0")
            self._conn.execute("COMMIT")

    def _migrate_logs(self) -> None:
        """Roots made before worker lines: every non-master line was the user code's."""
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(logs)")}
        if "user" not in columns:
            self._conn.execute("ALTER TABLE logs ADD COLUMN user INTEGER NOT NULL DEFAULT 1")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (nested calls join the outer one)."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            self._conn.execute("COMMIT")
            self.version += 1
            self.changed.notify_all()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Consistent reads (serialised with writes)."""
        with self.lock:
            yield self._conn

    def wait_for_change(self, seen_version: int, timeout: float) -> int:
        """Block until a write commits after ``seen_version`` (or timeout); return the new version."""
        with self.changed:
            if self.version == seen_version:
                self.changed.wait(timeout)
            return self.version

    def close(self) -> None:
        with self.lock:
            self._conn.close()
