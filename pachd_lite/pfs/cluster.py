"""The cluster's own records in the ``cluster`` key/value table: its id and its metadata."""

from __future__ import annotations

import json
import sqlite3
import uuid

from pachd_lite.pfs.model import PfsContext


def cluster_id(ctx: PfsContext) -> str:
    """The cluster's id (InspectCluster's id and deployment_id), made on first use and kept."""
    with ctx.db.tx() as conn:
        row = conn.execute("SELECT value FROM cluster WHERE key = 'id'").fetchone()
        if row is None:
            value = uuid.uuid4().hex
            conn.execute("INSERT INTO cluster(key, value) VALUES ('id', ?)", (value,))
            return value
        return row[0]


def read_cluster_metadata(conn: sqlite3.Connection) -> dict[str, str]:
    """The metadata EditMetadata set on the cluster ({} before any edit)."""
    row = conn.execute("SELECT value FROM cluster WHERE key = 'metadata'").fetchone()
    return json.loads(row[0]) if row else {}


def write_cluster_metadata(conn: sqlite3.Connection, metadata: dict[str, str]) -> None:
    conn.execute("INSERT OR REPLACE INTO cluster(key, value) VALUES ('metadata', ?)", (json.dumps(metadata),))


def cluster_metadata(ctx: PfsContext) -> dict[str, str]:
    """The cluster's metadata, read in its own transaction (InspectCluster)."""
    with ctx.db.read() as conn:
        return read_cluster_metadata(conn)
