"""Projects: create, inspect, list, delete. ``default`` always exists."""

from __future__ import annotations

import json
import sqlite3
import time

from pachd_lite.errors import AlreadyExists, FailedPrecondition, NotFound
from pachd_lite.pfs.model import PfsContext, ProjectInfo
from pachd_lite.pfs.names import validate_project_name

DEFAULT_PROJECT = "default"


def ensure_default(ctx: PfsContext) -> None:
    with ctx.db.tx() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO projects(name, description, created_at) VALUES (?, ?, ?)",
            (DEFAULT_PROJECT, "The default project", time.time()),
        )


def require_project(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM projects WHERE name = ?", (name or DEFAULT_PROJECT,)).fetchone()
    if row is None:
        raise NotFound(f"project {name!r} not found")
    return row


def _info(row: sqlite3.Row) -> ProjectInfo:
    return ProjectInfo(
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
        metadata=json.loads(row["metadata"]),
    )


def create_project(ctx: PfsContext, name: str, description: str = "", update: bool = False) -> None:
    validate_project_name(name)
    with ctx.db.tx() as conn:
        exists = conn.execute("SELECT 1 FROM projects WHERE name = ?", (name,)).fetchone()
        if exists and not update:
            raise AlreadyExists(f"project {name!r} already exists")
        if exists:
            conn.execute("UPDATE projects SET description = ? WHERE name = ?", (description, name))
        else:
            conn.execute(
                "INSERT INTO projects(name, description, created_at) VALUES (?, ?, ?)",
                (name, description, time.time()),
            )


def inspect_project(ctx: PfsContext, name: str) -> ProjectInfo:
    with ctx.db.read() as conn:
        return _info(require_project(conn, name))


def list_projects(ctx: PfsContext) -> list[ProjectInfo]:
    with ctx.db.read() as conn:
        return [_info(r) for r in conn.execute("SELECT * FROM projects ORDER BY name")]


def delete_project(ctx: PfsContext, name: str, force: bool = False) -> None:
    from pachd_lite.pfs import repos

    with ctx.db.tx() as conn:
        require_project(conn, name)
        rows = conn.execute("SELECT * FROM repos WHERE project = ? AND type = 'user'", (name,)).fetchall()
        if rows and not force:
            raise FailedPrecondition(
                f"cannot delete project {name!r}: it still has {len(rows)} repo(s) ({', '.join(r['name'] for r in rows)})"
            )
        for row in rows:
            repos.delete_repo_row(conn, row, force=True)
        conn.execute("DELETE FROM repos WHERE project = ?", (name,))
        if name != DEFAULT_PROJECT:
            conn.execute("DELETE FROM projects WHERE name = ?", (name,))


def set_metadata(conn: sqlite3.Connection, name: str, metadata: dict[str, str]) -> None:
    require_project(conn, name)
    conn.execute("UPDATE projects SET metadata = ? WHERE name = ?", (json.dumps(metadata), name))
