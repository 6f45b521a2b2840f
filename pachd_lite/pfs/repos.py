"""Repos: create, inspect, list, delete. System repos (``spec``, ``meta``) hang off a user repo."""

from __future__ import annotations

import json
import sqlite3
import time

from pachd_lite.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pachd_lite.pfs import garbage
from pachd_lite.pfs.model import USER, PfsContext, RepoInfo, RepoRef
from pachd_lite.pfs.names import validate_name
from pachd_lite.pfs.projects import require_project

REPO_TYPES = ("user", "spec", "meta")


def find_repo(conn: sqlite3.Connection, ref: RepoRef) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT * FROM repos WHERE project = ? AND name = ? AND type = ?",
        (ref.project or "default", ref.name, ref.type or USER),
    ).fetchone()


def require_repo(conn: sqlite3.Connection, ref: RepoRef) -> sqlite3.Row:
    row = find_repo(conn, ref)
    if row is None:
        require_project(conn, ref.project)
        raise NotFound(f"repo {ref} not found")
    return row


def repo_ref(row: sqlite3.Row) -> RepoRef:
    return RepoRef(project=row["project"], name=row["name"], type=row["type"])


def repo_ref_by_id(conn: sqlite3.Connection, repo_id: int) -> RepoRef:
    return repo_ref(conn.execute("SELECT * FROM repos WHERE id = ?", (repo_id,)).fetchone())


def is_pipeline_repo(conn: sqlite3.Connection, project: str, name: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM pipelines WHERE project = ? AND name = ? LIMIT 1", (project, name)
        ).fetchone()
        is not None
    )


def create_repo_in(
    conn: sqlite3.Connection, ref: RepoRef, description: str = "", update: bool = False
) -> int:
    validate_name("repo", ref.name)
    if ref.type not in REPO_TYPES:
        raise InvalidArgument(f"repo type {ref.type!r} is invalid: expected one of {', '.join(REPO_TYPES)}")
    require_project(conn, ref.project)
    if ref.type != USER and find_repo(conn, RepoRef(ref.project, ref.name, USER)) is None:
        raise NotFound(f"cannot create system repo {ref}: user repo {ref.project}/{ref.name} not found")
    row = find_repo(conn, ref)
    if row is not None:
        if not update:
            raise AlreadyExists(f"repo {ref} already exists")
        conn.execute("UPDATE repos SET description = ? WHERE id = ?", (description, row["id"]))
        return row["id"]
    cur = conn.execute(
        "INSERT INTO repos(project, name, type, description, created_at) VALUES (?, ?, ?, ?, ?)",
        (ref.project, ref.name, ref.type, description, time.time()),
    )
    return int(cur.lastrowid)


def create_repo(ctx: PfsContext, ref: RepoRef, description: str = "", update: bool = False) -> None:
    with ctx.db.tx() as conn:
        create_repo_in(conn, ref, description, update)


def _info(conn: sqlite3.Connection, row: sqlite3.Row) -> RepoInfo:
    branches = [
        r["name"]
        for r in conn.execute("SELECT name FROM branches WHERE repo_id = ? ORDER BY name", (row["id"],))
    ]
    size_row = conn.execute(
        "SELECT c.size_bytes FROM branches b JOIN commits c ON c.id = b.head_id "
        "WHERE b.repo_id = ? AND b.name = 'master'",
        (row["id"],),
    ).fetchone()
    return RepoInfo(
        ref=repo_ref(row),
        description=row["description"],
        created_at=row["created_at"],
        metadata=json.loads(row["metadata"]),
        branches=branches,
        size_bytes=size_row[0] if size_row else 0,
    )


def inspect_repo(ctx: PfsContext, ref: RepoRef) -> RepoInfo:
    with ctx.db.read() as conn:
        return _info(conn, require_repo(conn, ref))


def list_repos(ctx: PfsContext, repo_type: str = "", projects: list[str] | None = None) -> list[RepoInfo]:
    with ctx.db.read() as conn:
        rows = conn.execute("SELECT * FROM repos ORDER BY created_at DESC, id DESC").fetchall()
        return [
            _info(conn, r)
            for r in rows
            if (not repo_type or r["type"] == repo_type) and (not projects or r["project"] in projects)
        ]


def delete_repo_row(conn: sqlite3.Connection, row: sqlite3.Row, force: bool = False) -> None:
    """Delete a repo (and, for a user repo, its system repos) with every branch, commit and file."""
    targets = [row]
    if row["type"] == USER:
        targets += conn.execute(
            "SELECT * FROM repos WHERE project = ? AND name = ? AND type != 'user'",
            (row["project"], row["name"]),
        ).fetchall()
    ids = [r["id"] for r in targets]
    marks = ",".join("?" * len(ids))
    if not force:
        dependent = conn.execute(
            f"SELECT r.project, r.name, r.type, b.name AS branch FROM branch_provenance p "
            f"JOIN branches b ON b.id = p.branch_id JOIN repos r ON r.id = b.repo_id "
            f"JOIN branches src ON src.id = p.from_branch_id "
            f"WHERE src.repo_id IN ({marks}) AND b.repo_id NOT IN ({marks})",
            ids + ids,
        ).fetchone()
        if dependent is not None:
            dep = RepoRef(dependent["project"], dependent["name"], dependent["type"])
            what = f"branch {dep}@{dependent['branch']} has it in its provenance"
            if is_pipeline_repo(conn, dep.project, dep.name):
                what = f"pipeline {dep.project}/{dep.name} reads it ({what}); delete the pipeline first"
            raise FailedPrecondition(
                f"cannot delete repo {repo_ref(row)}: {what} (or use force to delete it anyway)"
            )
    commit_ids = f"SELECT id FROM commits WHERE repo_id IN ({marks})"
    branch_ids = f"SELECT id FROM branches WHERE repo_id IN ({marks})"
    conn.execute(f"DELETE FROM files WHERE commit_id IN ({commit_ids})", ids)
    garbage.note_garbage(conn)
    conn.execute(
        f"DELETE FROM commit_provenance WHERE commit_id IN ({commit_ids}) OR from_commit_id IN ({commit_ids})",
        ids + ids,
    )
    conn.execute(f"DELETE FROM commits WHERE repo_id IN ({marks})", ids)
    conn.execute(
        f"DELETE FROM branch_provenance WHERE branch_id IN ({branch_ids}) OR from_branch_id IN ({branch_ids})",
        ids + ids,
    )
    conn.execute(f"DELETE FROM branches WHERE repo_id IN ({marks})", ids)
    conn.execute(f"DELETE FROM repos WHERE id IN ({marks})", ids)


def delete_repo(ctx: PfsContext, ref: RepoRef, force: bool = False, internal: bool = False) -> bool:
    """Delete a repo; False if it did not exist. Pipeline repos only go with their pipeline."""
    with ctx.db.tx() as conn:
        require_project(conn, ref.project)
        row = find_repo(conn, ref)
        if row is None:
            return False
        if not internal and is_pipeline_repo(conn, row["project"], row["name"]):
            raise FailedPrecondition(
                f"cannot delete repo {ref}: cannot delete a repo associated with a pipeline - "
                "delete the pipeline instead"
            )
        delete_repo_row(conn, row, force=force)
        return True


def set_metadata(conn: sqlite3.Connection, ref: RepoRef, metadata: dict[str, str]) -> None:
    row = require_repo(conn, ref)
    conn.execute("UPDATE repos SET metadata = ? WHERE id = ?", (json.dumps(metadata), row["id"]))
