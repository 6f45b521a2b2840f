"""Branches: create (head, provenance), inspect, list, delete, walk provenance/subvenance."""

from __future__ import annotations

import json
import sqlite3
import time

from pachd_lite.errors import FailedPrecondition, InvalidArgument, NotFound
from pachd_lite.pfs import graph, triggers
from pachd_lite.pfs.commits import commit_ref_by_id, resolve_commit
from pachd_lite.pfs.model import ORIGIN_AUTO, BranchInfo, BranchRef, CommitRef, PfsContext
from pachd_lite.pfs.names import new_commit_set_id, validate_name
from pachd_lite.pfs.repos import repo_ref_by_id, require_repo


def find_branch(conn: sqlite3.Connection, ref: BranchRef) -> sqlite3.Row | None:
    repo = require_repo(conn, ref.repo)
    return conn.execute(
        "SELECT * FROM branches WHERE repo_id = ? AND name = ?", (repo["id"], ref.name)
    ).fetchone()


def require_branch(conn: sqlite3.Connection, ref: BranchRef) -> sqlite3.Row:
    row = find_branch(conn, ref)
    if row is None:
        raise NotFound(f"branch {ref.name} not found in repo {ref.repo}")
    return row


def branch_ref_by_id(conn: sqlite3.Connection, branch_id: int) -> BranchRef:
    row = conn.execute("SELECT * FROM branches WHERE id = ?", (branch_id,)).fetchone()
    return BranchRef(repo=repo_ref_by_id(conn, row["repo_id"]), name=row["name"])


def branch_info(conn: sqlite3.Connection, row: sqlite3.Row) -> BranchInfo:
    return BranchInfo(
        ref=BranchRef(repo=repo_ref_by_id(conn, row["repo_id"]), name=row["name"]),
        head=commit_ref_by_id(conn, row["head_id"]) if row["head_id"] is not None else None,
        direct_provenance=[branch_ref_by_id(conn, b) for b in graph.direct_provenance(conn, row["id"])],
        provenance=[branch_ref_by_id(conn, b) for b in graph.walk_branches(conn, row["id"], upstream=True)],
        subvenance=[branch_ref_by_id(conn, b) for b in graph.walk_branches(conn, row["id"], upstream=False)],
        metadata=json.loads(row["metadata"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        trigger=row["trigger"],
    )


def _ensure_branch(ctx: PfsContext, conn: sqlite3.Connection, ref: BranchRef, commit_set: str) -> int:
    """An existing branch's id, or a new branch with an empty finished AUTO head (pachd's fillNewBranches)."""
    row = find_branch(conn, ref)
    if row is not None:
        return row["id"]
    validate_name("branch", ref.name)
    repo = require_repo(conn, ref.repo)
    now = time.time()
    branch_id = int(
        conn.execute(
            "INSERT INTO branches(repo_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (repo["id"], ref.name, now, now),
        ).lastrowid
    )
    head = graph.create_commit_row(conn, repo["id"], commit_set, ref.name, None, ORIGIN_AUTO, finished=True)
    conn.execute("UPDATE branches SET head_id = ? WHERE id = ?", (head, branch_id))
    return branch_id


def create_branch_in(
    ctx: PfsContext,
    conn: sqlite3.Connection,
    ref: BranchRef,
    head: CommitRef | None = None,
    provenance: list[BranchRef] | None = None,
    trigger: str = "",
    commit_set: str | None = None,
) -> list[int]:
    """Create or update a branch inside a transaction; returns the row ids of commits it created."""
    validate_name("branch", ref.name)
    repo = require_repo(conn, ref.repo)
    commit_set = commit_set or new_commit_set_id()
    provenance = provenance or []
    parsed_trigger = triggers.Trigger.from_json(trigger)
    if parsed_trigger is not None:
        triggers.validate(conn, repo["id"], ref.name, parsed_trigger, bool(provenance))
    prov_ids = [_ensure_branch(ctx, conn, p, commit_set) for p in provenance]
    row = find_branch(conn, ref)
    now = time.time()
    if row is not None:
        branch_id = row["id"]
        for p_id, p_ref in zip(prov_ids, provenance, strict=True):
            if p_id == branch_id or branch_id in graph.walk_branches(conn, p_id, upstream=True):
                raise InvalidArgument(
                    f"branch {ref} cannot have {p_ref} in its provenance: that would be a cycle"
                )
    else:
        branch_id = int(
            conn.execute(
                "INSERT INTO branches(repo_id, name, created_at, updated_at, trigger) VALUES (?, ?, ?, ?, ?)",
                (repo["id"], ref.name, now, now, trigger),
            ).lastrowid
        )
    old_prov = set(graph.direct_provenance(conn, branch_id))
    conn.execute("DELETE FROM branch_provenance WHERE branch_id = ?", (branch_id,))
    for p_id in dict.fromkeys(prov_ids):
        conn.execute(
            "INSERT INTO branch_provenance(branch_id, from_branch_id) VALUES (?, ?)", (branch_id, p_id)
        )
    # as pachd: a request without a trigger keeps the branch's trigger
    conn.execute(
        "UPDATE branches SET updated_at = ?, trigger = COALESCE(NULLIF(?, ''), trigger) WHERE id = ?",
        (now, trigger, branch_id),
    )
    created: list[int] = []
    if head is not None and (head.id or head.branch):
        target = resolve_commit(conn, head)
        if target["repo_id"] != repo["id"]:
            raise InvalidArgument(f"head commit {head} of branch {ref} must be in repo {ref.repo}")
        conn.execute("UPDATE branches SET head_id = ? WHERE id = ?", (target["id"], branch_id))
        created = graph.propagate(conn, commit_set, [branch_id])
    elif row is None or (row["head_id"] is None) or old_prov != set(prov_ids):
        current_head = None if row is None else row["head_id"]
        heads = graph.provenance_heads(conn, branch_id)
        same_set = conn.execute(
            "SELECT id FROM commits WHERE repo_id = ? AND commit_set = ?", (repo["id"], commit_set)
        ).fetchone()
        if same_set is not None and same_set[0] == current_head:
            # Already given a commit in this transaction (e.g. by an earlier propagation): re-point it.
            new_head = current_head
            conn.execute("DELETE FROM commit_provenance WHERE commit_id = ?", (new_head,))
            for h in dict.fromkeys(heads):
                conn.execute(
                    "INSERT INTO commit_provenance(commit_id, from_commit_id) VALUES (?, ?)", (new_head, h)
                )
            created = graph.propagate(conn, commit_set, [branch_id])
        else:
            new_head = graph.create_commit_row(
                conn,
                repo["id"],
                commit_set,
                ref.name,
                current_head,
                ORIGIN_AUTO,
                provenance=heads,
                finished=not prov_ids,
            )
            conn.execute("UPDATE branches SET head_id = ? WHERE id = ?", (new_head, branch_id))
            created = [new_head, *graph.propagate(conn, commit_set, [branch_id])]
    if created:
        ctx.run_new_commit_hooks(conn, created)
    return created


def create_branch(
    ctx: PfsContext,
    ref: BranchRef,
    head: CommitRef | None = None,
    provenance: list[BranchRef] | None = None,
    trigger: str = "",
) -> None:
    with ctx.db.tx() as conn:
        create_branch_in(ctx, conn, ref, head, provenance, trigger)


def inspect_branch(ctx: PfsContext, ref: BranchRef) -> BranchInfo:
    with ctx.db.read() as conn:
        return branch_info(conn, require_branch(conn, ref))


def list_branches(ctx: PfsContext, repo: object, reverse: bool = False) -> list[BranchInfo]:
    with ctx.db.read() as conn:
        repo_row = require_repo(conn, repo)  # type: ignore[arg-type]
        rows = conn.execute(
            "SELECT * FROM branches WHERE repo_id = ? ORDER BY created_at DESC, id DESC", (repo_row["id"],)
        ).fetchall()
        infos = [branch_info(conn, r) for r in rows]
    return infos[::-1] if reverse else infos


def delete_branch(ctx: PfsContext, ref: BranchRef, force: bool = False) -> None:
    with ctx.db.tx() as conn:
        row = require_branch(conn, ref)
        dependents = graph.direct_subvenance(conn, row["id"])
        if dependents and not force:
            names = ", ".join(str(branch_ref_by_id(conn, b)) for b in dependents)
            raise FailedPrecondition(f"cannot delete branch {ref}: it is in the provenance of {names}")
        conn.execute(
            "DELETE FROM branch_provenance WHERE branch_id = ? OR from_branch_id = ?", (row["id"], row["id"])
        )
        conn.execute("DELETE FROM branches WHERE id = ?", (row["id"],))
        # pachd keeps a commit's branch as a row id: once the branch is gone (even if a branch of the
        # same name comes back) its commits name no branch.
        conn.execute(
            "UPDATE commits SET branch_name = '' WHERE repo_id = ? AND branch_name = ?",
            (row["repo_id"], row["name"]),
        )


def walk_branches(
    ctx: PfsContext, starts: list[BranchRef], upstream: bool, max_branches: int = 0, max_depth: int = 0
) -> list[BranchInfo]:
    with ctx.db.read() as conn:
        out: list[BranchInfo] = []
        for start in starts:
            row = require_branch(conn, start)
            for b in graph.walk_branches(conn, row["id"], upstream, max_depth, max_branches):
                out.append(
                    branch_info(conn, conn.execute("SELECT * FROM branches WHERE id = ?", (b,)).fetchone())
                )
        return out


def set_metadata(conn: sqlite3.Connection, ref: BranchRef, metadata: dict[str, str]) -> None:
    row = require_branch(conn, ref)
    conn.execute(
        "UPDATE branches SET metadata = ?, updated_at = ? WHERE id = ?",
        (json.dumps(metadata), time.time(), row["id"]),
    )
