"""Commits: start, finish, inspect (with wait), list, subscribe, clear; resolving references."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator

from pachd_lite.errors import FailedPrecondition, InvalidArgument, NotFound
from pachd_lite.pfs import garbage, graph, layers
from pachd_lite.pfs.model import (
    ORIGIN_USER,
    STATE_FINISHED,
    USER,
    BranchRef,
    CommitInfo,
    CommitRef,
    PfsContext,
)
from pachd_lite.pfs.names import is_commit_id, new_commit_set_id, parse_ancestry, validate_name
from pachd_lite.pfs.repos import is_pipeline_repo, repo_ref_by_id, require_repo

WAIT_SLICE = 1.0


def _find_branch(conn: sqlite3.Connection, repo_id: int, name: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM branches WHERE repo_id = ? AND name = ?", (repo_id, name)).fetchone()


def resolve_commit(conn: sqlite3.Connection, ref: CommitRef) -> sqlite3.Row:
    """The commit row a reference names: global id, branch head, and ancestry (``^N``, ``~N``, ``.N``)."""
    repo = require_repo(conn, ref.repo)
    text = ref.id or ref.branch
    if not text:
        raise InvalidArgument(f"commit in repo {ref.repo} must name a branch or a commit id")
    anc = parse_ancestry(text)
    if is_commit_id(anc.base):
        row = conn.execute(
            "SELECT * FROM commits WHERE repo_id = ? AND commit_set = ?", (repo["id"], anc.base)
        ).fetchone()
        if row is None:
            raise NotFound(f"commit {anc.base} not found in repo {ref.repo}")
    else:
        branch = _find_branch(conn, repo["id"], anc.base)
        if branch is None:
            if ref.id and not ref.branch and len(anc.base) == 32:
                raise NotFound(f"commit {anc.base} not found in repo {ref.repo}")
            raise NotFound(f"branch {anc.base} not found in repo {ref.repo}")
        if branch["head_id"] is None:
            raise NotFound(f"branch {anc.base} in repo {ref.repo} has no head commit")
        row = conn.execute("SELECT * FROM commits WHERE id = ?", (branch["head_id"],)).fetchone()
    if anc.back:
        for step in range(anc.back):
            if row["parent_id"] is None:
                raise NotFound(f"commit {text} not found in repo {ref.repo}: only {step} ancestor(s) exist")
            row = conn.execute("SELECT * FROM commits WHERE id = ?", (row["parent_id"],)).fetchone()
    elif anc.from_root:
        chain = [row]
        while chain[-1]["parent_id"] is not None:
            chain.append(
                conn.execute("SELECT * FROM commits WHERE id = ?", (chain[-1]["parent_id"],)).fetchone()
            )
        chain.reverse()
        if anc.from_root > len(chain):
            raise NotFound(
                f"commit {text} not found in repo {ref.repo}: the branch has {len(chain)} commit(s)"
            )
        row = chain[anc.from_root - 1]
    return row


def commit_ref(conn: sqlite3.Connection, row: sqlite3.Row) -> CommitRef:
    return CommitRef(
        repo=repo_ref_by_id(conn, row["repo_id"]), id=row["commit_set"], branch=row["branch_name"]
    )


def commit_ref_by_id(conn: sqlite3.Connection, rowid: int) -> CommitRef:
    return commit_ref(conn, conn.execute("SELECT * FROM commits WHERE id = ?", (rowid,)).fetchone())


def commit_info(conn: sqlite3.Connection, row: sqlite3.Row) -> CommitInfo:
    prov = conn.execute(
        "SELECT c.* FROM commit_provenance p JOIN commits c ON c.id = p.from_commit_id WHERE p.commit_id = ? "
        "ORDER BY c.id",
        (row["id"],),
    ).fetchall()
    subv = conn.execute(
        "SELECT c.* FROM commit_provenance p JOIN commits c ON c.id = p.commit_id WHERE p.from_commit_id = ? "
        "ORDER BY c.id",
        (row["id"],),
    ).fetchall()
    children = conn.execute("SELECT * FROM commits WHERE parent_id = ? ORDER BY id", (row["id"],)).fetchall()
    parent = None
    if row["parent_id"] is not None:
        parent = commit_ref_by_id(conn, row["parent_id"])
    return CommitInfo(
        ref=commit_ref(conn, row),
        rowid=row["id"],
        origin=row["origin"],
        description=row["description"],
        parent=parent,
        children=[commit_ref(conn, c) for c in children],
        started=row["started"],
        finishing=row["finishing"],
        finished=row["finished"],
        direct_provenance=[commit_ref(conn, c) for c in prov],
        direct_subvenance=[commit_ref(conn, c) for c in subv],
        error=row["error"],
        size_bytes=row["size_bytes"],
        metadata=json.loads(row["metadata"]),
        updated_at=row["updated_at"],
    )


def is_output_branch(conn: sqlite3.Connection, branch_id: int) -> bool:
    return (
        conn.execute("SELECT 1 FROM branch_provenance WHERE branch_id = ? LIMIT 1", (branch_id,)).fetchone()
        is not None
    )


def start_commit_in(
    ctx: PfsContext,
    conn: sqlite3.Connection,
    branch: BranchRef,
    parent: CommitRef | None = None,
    description: str = "",
    commit_set: str | None = None,
    origin: int = ORIGIN_USER,
    internal: bool = False,
) -> int:
    """Start a commit on ``branch`` (created if missing) inside ``conn``'s transaction; return its row id."""
    validate_name("branch", branch.name)
    repo = require_repo(conn, branch.repo)
    row = _find_branch(conn, repo["id"], branch.name)
    if row is not None and is_output_branch(conn, row["id"]) and not internal:
        raise FailedPrecondition(
            f"cannot start a commit on an output branch: branch {branch} has provenance "
            "(commits on it are made by propagation)"
        )
    parent_row = resolve_commit(conn, parent) if parent is not None and (parent.id or parent.branch) else None
    if parent_row is None and row is not None and row["head_id"] is not None:
        parent_row = conn.execute("SELECT * FROM commits WHERE id = ?", (row["head_id"],)).fetchone()
    if parent_row is not None and parent_row["finished"] is None:
        parent_id = commit_ref(conn, parent_row)
        raise FailedPrecondition(f"parent commit {parent_id.id} has not been finished (branch {branch})")
    now = time.time()
    if row is None:
        cur = conn.execute(
            "INSERT INTO branches(repo_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (repo["id"], branch.name, now, now),
        )
        branch_id = int(cur.lastrowid)
    else:
        branch_id = row["id"]
    commit_set = commit_set or new_commit_set_id()
    commit_id = graph.create_commit_row(
        conn,
        repo["id"],
        commit_set,
        branch.name,
        parent_row["id"] if parent_row is not None else None,
        origin,
        description,
    )
    conn.execute("UPDATE branches SET head_id = ?, updated_at = ? WHERE id = ?", (commit_id, now, branch_id))
    created = [commit_id, *graph.propagate(conn, commit_set, [branch_id])]
    ctx.run_new_commit_hooks(conn, created)
    return commit_id


def start_commit(
    ctx: PfsContext, branch: BranchRef, parent: CommitRef | None = None, description: str = ""
) -> CommitInfo:
    with ctx.db.tx() as conn:
        commit_id = start_commit_in(ctx, conn, branch, parent, description)
        return commit_info(conn, conn.execute("SELECT * FROM commits WHERE id = ?", (commit_id,)).fetchone())


def finish_commit_row(
    ctx: PfsContext, conn: sqlite3.Connection, commit_id: int, description: str = "", error: str = ""
) -> None:
    now = time.time()
    size = layers.total_size(conn, commit_id)
    conn.execute(
        "UPDATE commits SET finishing = COALESCE(finishing, ?), finished = ?, error = CASE WHEN ? != '' THEN ? "
        "ELSE error END, description = CASE WHEN ? != '' THEN ? ELSE description END, size_bytes = ?, "
        "updated_at = ? WHERE id = ?",
        (now, now, error, error, description, description, size, now, commit_id),
    )
    ctx.run_finished_commit_hooks(conn, [commit_id])


def finish_commit(
    ctx: PfsContext,
    ref: CommitRef,
    description: str = "",
    error: str = "",
    force: bool = False,
    internal: bool = False,
) -> None:
    """Finish a commit (FINISHING then FINISHED); ``error`` marks it failed for downstream."""
    with ctx.db.tx() as conn:
        row = resolve_commit(conn, ref)
        if row["finished"] is not None:
            raise FailedPrecondition(f"commit {row['commit_set']} in repo {ref.repo} has already finished")
        repo = repo_ref_by_id(conn, row["repo_id"])
        if not internal and (
            repo.type == "meta" or (repo.type == USER and is_pipeline_repo(conn, repo.project, repo.name))
        ):
            raise FailedPrecondition(
                f"cannot finish commit {row['commit_set']} in repo {repo}: cannot finish a pipeline output or "
                "meta commit, use 'stop job' instead"
            )
        finish_commit_row(ctx, conn, row["id"], description, error)


def inspect_commit(
    ctx: PfsContext, ref: CommitRef, wait_state: int = 0, alive: Callable[[], bool] = lambda: True
) -> CommitInfo:
    """Inspect a commit; with ``wait_state`` block until the commit reaches that state."""
    with ctx.db.read() as conn:
        row = resolve_commit(conn, ref)
        rowid = row["id"]
        info = commit_info(conn, row)
    while wait_state and info.state < min(wait_state, STATE_FINISHED) and alive():
        version = ctx.db.version
        with ctx.db.read() as conn:
            row = conn.execute("SELECT * FROM commits WHERE id = ?", (rowid,)).fetchone()
            if row is None:
                raise NotFound(f"commit {ref} was deleted while waiting for it")
            info = commit_info(conn, row)
        if info.state >= min(wait_state, STATE_FINISHED):
            break
        ctx.db.wait_for_change(version, WAIT_SLICE)
    return info


def get_commit_info(ctx: PfsContext, rowid: int) -> CommitInfo:
    with ctx.db.read() as conn:
        return commit_info(conn, conn.execute("SELECT * FROM commits WHERE id = ?", (rowid,)).fetchone())


def list_commits(
    ctx: PfsContext,
    repo: object,
    from_: CommitRef | None = None,
    to: CommitRef | None = None,
    number: int = 0,
    reverse: bool = False,
    origin_kind: int = 0,
    started_before: float | None = None,
) -> list[CommitInfo]:
    """Commits of a repo, newest first (``reverse``: oldest first), optionally between ``from_`` and ``to``."""
    with ctx.db.read() as conn:
        repo_row = require_repo(conn, repo)  # type: ignore[arg-type]
        if to is not None:
            rows = [resolve_commit(conn, to)]
            while rows[-1]["parent_id"] is not None:
                rows.append(
                    conn.execute("SELECT * FROM commits WHERE id = ?", (rows[-1]["parent_id"],)).fetchone()
                )
        else:
            rows = conn.execute(
                "SELECT * FROM commits WHERE repo_id = ? ORDER BY id DESC", (repo_row["id"],)
            ).fetchall()
        if from_ is not None:
            stop = resolve_commit(conn, from_)["id"]
            rows = [r for r in rows if r["id"] > stop]
        if origin_kind:
            rows = [r for r in rows if r["origin"] == origin_kind]
        if started_before is not None:
            rows = [r for r in rows if r["started"] <= started_before]
        if number:
            rows = rows[:number]
        if reverse:
            rows.reverse()
        return [commit_info(conn, r) for r in rows]


def subscribe_commits(
    ctx: PfsContext,
    repo: object,
    branch: str = "",
    from_: CommitRef | None = None,
    state: int = 0,
    origin_kind: int = 0,
    alive: Callable[[], bool] = lambda: True,
) -> Iterator[CommitInfo]:
    """Stream a repo's commits (on ``branch`` if given) in creation order, then new ones as they come."""
    with ctx.db.read() as conn:
        repo_row = require_repo(conn, repo)  # type: ignore[arg-type]
        last = resolve_commit(conn, from_)["id"] if from_ is not None and (from_.id or from_.branch) else 0
    wanted = min(state or 1, STATE_FINISHED)
    while alive():
        version = ctx.db.version
        batch: list[CommitInfo] = []
        with ctx.db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM commits WHERE repo_id = ? AND id > ? ORDER BY id", (repo_row["id"], last)
            ).fetchall()
            for row in rows:
                if branch and row["branch_name"] != branch:
                    last = row["id"]
                    continue
                if origin_kind and row["origin"] != origin_kind:
                    last = row["id"]
                    continue
                info = commit_info(conn, row)
                if info.state < wanted:
                    break
                batch.append(info)
                last = row["id"]
        yield from batch
        ctx.db.wait_for_change(version, WAIT_SLICE)


def clear_commit(ctx: PfsContext, ref: CommitRef) -> None:
    with ctx.db.tx() as conn:
        row = resolve_commit(conn, ref)
        if row["finished"] is not None:
            raise FailedPrecondition(f"commit {row['commit_set']} in repo {ref.repo} has already finished")
        # pachd drops the commit's own changes: the content goes back to the parent's.
        layers.reset_to_parent(conn, row["id"])
        garbage.note_garbage(conn)


def set_metadata(conn: sqlite3.Connection, ref: CommitRef, metadata: dict[str, str]) -> None:
    row = resolve_commit(conn, ref)
    conn.execute(
        "UPDATE commits SET metadata = ?, updated_at = ? WHERE id = ?",
        (json.dumps(metadata), time.time(), row["id"]),
    )
