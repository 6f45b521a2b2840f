"""Low-level commit creation and provenance propagation shared by commits and branches.

Propagation is what gives one write one global id: when branches get new heads in a
write transaction (the commit set), every branch downstream of them gets a new AUTO
commit with the same id, whose direct provenance is the current head of each of its
direct-provenance branches (the new commit where that branch was just updated).
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque

from pachd_lite.pfs import layers
from pachd_lite.pfs.model import ORIGIN_AUTO

GRAPH_MAX_DEPTH = 1000
GRAPH_LIMIT = 10000


def create_commit_row(
    conn: sqlite3.Connection,
    repo_id: int,
    commit_set: str,
    branch_name: str,
    parent_id: int | None,
    origin: int,
    description: str = "",
    provenance: list[int] | None = None,
    finished: bool = False,
) -> int:
    """Insert a commit whose tree starts as its parent's; return its row id."""
    now = time.time()
    cur = conn.execute(
        "INSERT INTO commits(repo_id, commit_set, branch_name, parent_id, origin, description, started, "
        "finishing, finished, updated_at, size_bytes) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE((SELECT size_bytes FROM commits WHERE id = ?), 0))",
        (
            repo_id,
            commit_set,
            branch_name,
            parent_id,
            origin,
            description,
            now,
            now if finished else None,
            now if finished else None,
            now,
            parent_id,
        ),
    )
    commit_id = int(cur.lastrowid)
    layers.start_layer(conn, commit_id, parent_id)
    for from_id in dict.fromkeys(provenance or []):
        conn.execute(
            "INSERT OR IGNORE INTO commit_provenance(commit_id, from_commit_id) VALUES (?, ?)",
            (commit_id, from_id),
        )
    return commit_id


def _direct_edges(conn: sqlite3.Connection, kind: str, node: int, upstream: bool) -> list[int]:
    """Direct provenance (``upstream``) or subvenance of a ``kind`` ("branch"/"commit") row id."""
    near, far = (f"{kind}_id", f"from_{kind}_id") if upstream else (f"from_{kind}_id", f"{kind}_id")
    sql = f"SELECT {far} FROM {kind}_provenance WHERE {near} = ? ORDER BY {far}"
    return [r[0] for r in conn.execute(sql, (node,)).fetchall()]


def direct_provenance(conn: sqlite3.Connection, branch_id: int) -> list[int]:
    return _direct_edges(conn, "branch", branch_id, upstream=True)


def direct_subvenance(conn: sqlite3.Connection, branch_id: int) -> list[int]:
    return _direct_edges(conn, "branch", branch_id, upstream=False)


def provenance_heads(conn: sqlite3.Connection, branch_id: int) -> list[int]:
    """Head commit ids of a branch's direct provenance branches (those that have a head)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT b.head_id FROM branch_provenance p JOIN branches b ON b.id = p.from_branch_id "
            "WHERE p.branch_id = ? AND b.head_id IS NOT NULL ORDER BY b.id",
            (branch_id,),
        )
    ]


def _walk(
    conn: sqlite3.Connection, kind: str, start: int, upstream: bool, max_depth: int, limit: int
) -> list[int]:
    """Breadth-first transitive provenance (``upstream``) or subvenance; the start is excluded."""
    max_depth = max_depth or GRAPH_MAX_DEPTH
    limit = limit or GRAPH_LIMIT
    seen: dict[int, None] = {}
    queue = deque([(start, 0)])
    while queue and len(seen) < limit:
        node, depth = queue.popleft()
        if depth >= max_depth:
            continue
        for nxt in _direct_edges(conn, kind, node, upstream):
            if nxt not in seen and nxt != start:
                seen[nxt] = None
                queue.append((nxt, depth + 1))
                if len(seen) >= limit:
                    break
    return list(seen)


def walk_branches(
    conn: sqlite3.Connection, start: int, upstream: bool, max_depth: int = 0, limit: int = 0
) -> list[int]:
    """Transitive branch provenance (``upstream``) or subvenance, breadth first; the start is excluded."""
    return _walk(conn, "branch", start, upstream, max_depth, limit)


def walk_commits(
    conn: sqlite3.Connection, start: int, upstream: bool, max_depth: int = 0, limit: int = 0
) -> list[int]:
    """Transitive commit provenance or subvenance, breadth first; the start is excluded."""
    return _walk(conn, "commit", start, upstream, max_depth, limit)


def propagate(conn: sqlite3.Connection, commit_set: str, sources: list[int]) -> list[int]:
    """Give every branch downstream of ``sources`` a new AUTO commit in ``commit_set``.

    ``sources`` are branches whose heads changed in this transaction. Returns the new
    commit row ids in topological order.
    """
    downstream: set[int] = set()
    for source in sources:
        downstream.update(walk_branches(conn, source, upstream=False))
    downstream -= set(sources)
    if not downstream:
        return []
    pending = {b: [p for p in direct_provenance(conn, b) if p in downstream] for b in downstream}
    created: list[int] = []
    while pending:
        ready = sorted(b for b, deps in pending.items() if not deps)
        if not ready:  # a cycle; CreateBranch refuses these, so this is defensive
            ready = sorted(pending)
        for branch_id in ready:
            pending.pop(branch_id)
            for deps in pending.values():
                if branch_id in deps:
                    deps.remove(branch_id)
            created.append(_new_auto_head(conn, branch_id, commit_set))
    return created


def _new_auto_head(conn: sqlite3.Connection, branch_id: int, commit_set: str) -> int:
    branch = conn.execute("SELECT * FROM branches WHERE id = ?", (branch_id,)).fetchone()
    existing = conn.execute(
        "SELECT id FROM commits WHERE repo_id = ? AND commit_set = ?", (branch["repo_id"], commit_set)
    ).fetchone()
    heads = provenance_heads(conn, branch_id)
    if existing is not None:
        # Already made earlier in this transaction (e.g. a second input changed): re-point it.
        commit_id = int(existing[0])
        conn.execute("DELETE FROM commit_provenance WHERE commit_id = ?", (commit_id,))
        for head in dict.fromkeys(heads):
            conn.execute(
                "INSERT INTO commit_provenance(commit_id, from_commit_id) VALUES (?, ?)", (commit_id, head)
            )
        return commit_id
    commit_id = create_commit_row(
        conn, branch["repo_id"], commit_set, branch["name"], branch["head_id"], ORIGIN_AUTO, provenance=heads
    )
    conn.execute(
        "UPDATE branches SET head_id = ?, updated_at = ? WHERE id = ?", (commit_id, time.time(), branch_id)
    )
    return commit_id
