"""Commit sets (one global id per write transaction): inspect with wait, list, drop, squash, walks."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator

from pachd_lite.errors import FailedPrecondition, NotFound
from pachd_lite.pfs import garbage, graph, layers
from pachd_lite.pfs.commits import WAIT_SLICE, commit_info, resolve_commit
from pachd_lite.pfs.model import CommitInfo, CommitRef, PfsContext
from pachd_lite.pfs.names import one_commit_set
from pachd_lite.storage import db


@contextlib.contextmanager
def one_transaction(ctx: PfsContext, commit_set: str) -> Iterator[None]:
    """The block's writes share ``commit_set`` and one database transaction: all of them or none
    (transaction_v2's FinishTransaction)."""
    try:
        with one_commit_set(commit_set), ctx.db.tx():
            yield
    except sqlite3.IntegrityError as exc:
        raise FailedPrecondition(
            f"transaction failed: two writes to one repo in one commit set are not possible ({exc})"
        ) from exc


def _set_rows(conn: sqlite3.Connection, commit_set: str) -> list[sqlite3.Row]:
    rows = conn.execute("SELECT * FROM commits WHERE commit_set = ? ORDER BY id", (commit_set,)).fetchall()
    if not rows:
        raise NotFound(f"commit set {commit_set} not found")
    return rows


def commit_set_members(conn: sqlite3.Connection, commit_set: str) -> list[int]:
    """The set's commits plus their transitive provenance from earlier sets, in topological order."""
    own = [r["id"] for r in _set_rows(conn, commit_set)]
    members: dict[int, None] = {}
    for rowid in own:
        for up in graph.walk_commits(conn, rowid, upstream=True):
            members[up] = None
        members[rowid] = None
    ids = list(members)
    deps = {
        i: {
            r[0]
            for r in conn.execute("SELECT from_commit_id FROM commit_provenance WHERE commit_id = ?", (i,))
            if r[0] in members
        }
        for i in ids
    }
    ordered: list[int] = []
    while deps:
        ready = sorted(i for i, d in deps.items() if not d) or sorted(deps)
        for i in ready:
            deps.pop(i)
            ordered.append(i)
            for d in deps.values():
                d.discard(i)
    return ordered


def inspect_commit_set(
    ctx: PfsContext, commit_set: str, wait: bool = False, alive: Callable[[], bool] = lambda: True
) -> Iterator[CommitInfo]:
    """Stream the set's commits (with provenance); with ``wait``, each only once finished."""
    with ctx.db.read() as conn:
        ids = commit_set_members(conn, commit_set)
    if not wait:
        with ctx.db.read() as conn:
            infos = [
                commit_info(conn, conn.execute("SELECT * FROM commits WHERE id = ?", (i,)).fetchone())
                for i in ids
            ]
        yield from infos
        return
    pending = list(ids)
    while pending and alive():
        version = ctx.db.version
        ready: list[CommitInfo] = []
        with ctx.db.read() as conn:
            for i in list(pending):
                row = conn.execute("SELECT * FROM commits WHERE id = ?", (i,)).fetchone()
                if row is None:
                    pending.remove(i)
                elif row["finished"] is not None:
                    ready.append(commit_info(conn, row))
                    pending.remove(i)
        yield from ready
        if pending:
            ctx.db.wait_for_change(version, WAIT_SLICE)


def list_commit_sets(ctx: PfsContext, project: str = "") -> list[tuple[str, list[CommitInfo]]]:
    with ctx.db.read() as conn:
        sql = "SELECT c.commit_set, MAX(c.id) AS newest FROM commits c JOIN repos r ON r.id = c.repo_id"
        args: tuple = ()
        if project:
            sql += " WHERE r.project = ?"
            args = (project,)
        sql += " GROUP BY c.commit_set ORDER BY newest DESC"
        out = []
        for row in conn.execute(sql, args).fetchall():
            rows = conn.execute(
                "SELECT * FROM commits WHERE commit_set = ? ORDER BY id", (row[0],)
            ).fetchall()
            out.append((row[0], [commit_info(conn, r) for r in rows]))
        return out


def drop_commit_set(ctx: PfsContext, commit_set: str, squash: bool = False) -> None:
    """Remove every commit of the set; branch heads move to the parents, children are re-parented.

    With ``squash`` the content is kept in the children (what they inherited from a dropped
    commit moves into their own layers; heads are refused); without it, a commit with children
    cannot be dropped.
    """
    with ctx.db.tx() as conn:
        rows = _set_rows(conn, commit_set)
        ids = {r["id"] for r in rows}
        for row in rows:
            outside = conn.execute(
                "SELECT commit_id FROM commit_provenance WHERE from_commit_id = ?", (row["id"],)
            ).fetchall()
            if any(o[0] not in ids for o in outside):
                raise FailedPrecondition(
                    f"cannot drop commit set {commit_set}: commits outside the set have it in their provenance"
                )
            if row["finished"] is None:
                raise FailedPrecondition(f"cannot drop commit set {commit_set}: it has unfinished commits")
        for row in rows:
            children = conn.execute("SELECT id FROM commits WHERE parent_id = ?", (row["id"],)).fetchall()
            if children and not squash:
                raise FailedPrecondition(
                    f"cannot drop commit set {commit_set}: commit {commit_set} has children; only the newest "
                    "commits can be dropped (use squash)"
                )
            if squash and not children:
                raise FailedPrecondition(f"cannot squash commit set {commit_set}: it contains branch heads")
        now = time.time()
        for row in rows:
            layers.fold_into_children(conn, row["id"])  # children keep their trees without it
            conn.execute(
                "UPDATE branches SET head_id = ?, updated_at = ? WHERE head_id = ?",
                (row["parent_id"], now, row["id"]),
            )
            conn.execute(
                "UPDATE commits SET parent_id = ? WHERE parent_id = ?", (row["parent_id"], row["id"])
            )
            layers.drop(conn, row["id"])
            conn.execute(
                "DELETE FROM commit_provenance WHERE commit_id = ? OR from_commit_id = ?",
                (row["id"], row["id"]),
            )
            conn.execute("DELETE FROM commits WHERE id = ?", (row["id"],))
        garbage.note_garbage(conn)
        # the jobs of this commit set go with their output commits, as in pachd
        db.delete_jobs(conn, job_id=commit_set)


def walk_commits(
    ctx: PfsContext, starts: list[CommitRef], upstream: bool, max_commits: int = 0, max_depth: int = 0
) -> list[CommitInfo]:
    with ctx.db.read() as conn:
        out: list[CommitInfo] = []
        for start in starts:
            row = resolve_commit(conn, start)
            for i in graph.walk_commits(conn, row["id"], upstream, max_depth, max_commits):
                out.append(
                    commit_info(conn, conn.execute("SELECT * FROM commits WHERE id = ?", (i,)).fetchone())
                )
        return out
