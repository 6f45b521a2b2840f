"""How a commit's file tree is stored: a full layer, or a delta on its finished parent.

Each commit owns the rows of ``files`` with its ``commit_id`` (its layer). A *full* layer
(``commits.layer_full = 1``) holds the whole tree. A *delta* layer holds only what changed since
the parent: new or rewritten files, and tombstones (``blob = ''``) for files deleted. A commit's
tree is the nearest full layer up its parent chain with the deltas below it applied in order.
A commit is a delta only when its parent was finished when it was made (a finished tree never
changes, so the delta stays right), and at most :data:`MAX_DELTAS` deltas follow a full layer,
which bounds the work of a read. So a commit that changes one file costs one row, not a copy of
the whole file table; roots written before deltas existed are all full layers and read as before.

Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

MAX_DELTAS = 64
TOMBSTONE = ""
_TOP = "\U0010ffff"


@dataclass
class Entry:
    path: str
    blob: str
    size: int
    datum: str = ""


_CHAIN_SQL = """
WITH RECURSIVE up(id, parent_id, full, n) AS (
    SELECT id, parent_id, layer_full, 0 FROM commits WHERE id = ?
    UNION ALL
    SELECT c.id, c.parent_id, c.layer_full, up.n + 1 FROM commits c JOIN up ON c.id = up.parent_id
    WHERE up.full = 0 AND up.n <= ?
)
SELECT id FROM up ORDER BY n
"""


def chain(conn: sqlite3.Connection, commit_id: int) -> list[int]:
    """The layers making up a commit's tree, newest (the commit) first, ending at a full layer."""
    return [r[0] for r in conn.execute(_CHAIN_SQL, (commit_id, MAX_DELTAS + 1))]


def _rows(
    conn: sqlite3.Connection, ids: list[int], low: str | None, high: str | None, exact: list[str] | None
):
    marks = ",".join("?" * len(ids))
    sql = f"SELECT commit_id, path, blob, size, datum FROM files WHERE commit_id IN ({marks})"
    params: list[object] = list(ids)
    if exact is not None:
        sql += f" AND path IN ({','.join('?' * len(exact))})"
        params += exact
    elif low is not None:
        sql += " AND path >= ? AND path < ?"
        params += [low, high]
    return conn.execute(sql, params).fetchall()


def _merge(ids: list[int], rows) -> dict[str, Entry]:
    """Apply layers oldest first: each path takes its value from the newest layer holding it."""
    rank = {cid: i for i, cid in enumerate(ids)}  # 0 = newest
    best: dict[str, tuple[int, tuple]] = {}
    for r in rows:
        k = rank[r[0]]
        seen = best.get(r[1])
        if seen is None or k < seen[0]:
            best[r[1]] = (k, r)
    return {p: Entry(r[1], r[2], r[3], r[4]) for p, (_k, r) in best.items() if r[2] != TOMBSTONE}


def entries(conn: sqlite3.Connection, commit_id: int, under: str = "/") -> list[Entry]:
    """The files of a commit at or below ``under`` (a cleaned path), sorted by path."""
    ids = chain(conn, commit_id)
    if not ids:
        return []
    low, high = (None, None) if under == "/" else (under, under + _TOP)
    if len(ids) == 1:  # a full layer: no tombstones, already the tree
        sql = "SELECT path, blob, size, datum FROM files WHERE commit_id = ?"
        params: list[object] = [commit_id]
        if low is not None:
            sql += " AND path >= ? AND path < ?"
            params += [low, high]
        found = [Entry(*r) for r in conn.execute(sql + " ORDER BY path", params)]
    else:
        merged = _merge(ids, _rows(conn, ids, low, high, None))
        found = [merged[p] for p in sorted(merged)]
    if under != "/":
        found = [e for e in found if e.path == under or e.path.startswith(under + "/")]
    return found


def lookup(conn: sqlite3.Connection, commit_id: int, paths: list[str]) -> dict[str, Entry]:
    """The files among ``paths`` (exact) that exist in a commit's tree."""
    ids = chain(conn, commit_id)
    if not ids or not paths:
        return {}
    return _merge(ids, _rows(conn, ids, None, None, paths))


def first_below(conn: sqlite3.Connection, commit_id: int, path: str) -> str | None:
    """Some file strictly below directory ``path`` in a commit's tree, or None."""
    ids = chain(conn, commit_id)
    if len(ids) == 1:
        row = conn.execute(
            "SELECT path FROM files WHERE commit_id = ? AND path > ? AND path < ? LIMIT 1",
            (commit_id, path + "/", path + "/" + _TOP),
        ).fetchone()
        return row[0] if row else None
    merged = _merge(ids, _rows(conn, ids, path + "/", path + "/" + _TOP, None))
    return min(merged) if merged else None


def total_size(conn: sqlite3.Connection, commit_id: int) -> int:
    ids = chain(conn, commit_id)
    if len(ids) == 1:
        return conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM files WHERE commit_id = ?", (commit_id,)
        ).fetchone()[0]
    return sum(e.size for e in _merge(ids, _rows(conn, ids, None, None, None)).values())


# --- writes ------------------------------------------------------------------------------------
def _is_full(conn: sqlite3.Connection, commit_id: int) -> bool:
    row = conn.execute("SELECT layer_full FROM commits WHERE id = ?", (commit_id,)).fetchone()
    return bool(row is None or row[0])


def _set_kind(conn: sqlite3.Connection, commit_id: int, full: bool, depth: int) -> None:
    conn.execute(
        "UPDATE commits SET layer_full = ?, layer_depth = ? WHERE id = ?", (int(full), depth, commit_id)
    )


def _delta_depth(conn: sqlite3.Connection, parent_id: int | None) -> int | None:
    """The depth a delta on ``parent_id`` would have, or None if it must be a full layer."""
    if parent_id is None:
        return None
    row = conn.execute("SELECT finished, layer_depth FROM commits WHERE id = ?", (parent_id,)).fetchone()
    if row is None or row[0] is None or row[1] + 1 > MAX_DELTAS:
        return None
    return row[1] + 1


def _write_full(conn: sqlite3.Connection, commit_id: int, items: Iterable[Entry]) -> None:
    conn.execute("DELETE FROM files WHERE commit_id = ?", (commit_id,))
    conn.executemany(
        "INSERT OR REPLACE INTO files(commit_id, path, blob, size, datum) VALUES (?, ?, ?, ?, ?)",
        [(commit_id, e.path, e.blob, e.size, e.datum) for e in items],
    )
    _set_kind(conn, commit_id, True, 0)


def start_layer(conn: sqlite3.Connection, commit_id: int, parent_id: int | None) -> None:
    """A new commit's tree starts as its parent's: an empty delta, or a full copy."""
    depth = _delta_depth(conn, parent_id)
    if depth is not None:
        _set_kind(conn, commit_id, False, depth)
    else:
        _write_full(conn, commit_id, entries(conn, parent_id) if parent_id is not None else [])


def put(conn: sqlite3.Connection, commit_id: int, entry: Entry) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO files(commit_id, path, blob, size, datum) VALUES (?, ?, ?, ?, ?)",
        (commit_id, entry.path, entry.blob, entry.size, entry.datum),
    )


def delete(conn: sqlite3.Connection, commit_id: int, path: str) -> None:
    """Delete a file or a whole directory (``/``: everything) from an open commit."""
    if path == "/":
        _write_full(conn, commit_id, [])
        return
    conn.execute(
        "DELETE FROM files WHERE commit_id = ? AND (path = ? OR (path > ? AND path < ?))",
        (commit_id, path, path + "/", path + "/" + _TOP),
    )
    if _is_full(conn, commit_id):
        return
    parent = conn.execute("SELECT parent_id FROM commits WHERE id = ?", (commit_id,)).fetchone()[0]
    conn.executemany(
        "INSERT OR REPLACE INTO files(commit_id, path, blob, size, datum) VALUES (?, ?, ?, -1, '')",
        [(commit_id, e.path, TOMBSTONE) for e in entries(conn, parent, path)],
    )


def replace(conn: sqlite3.Connection, commit_id: int, items: list[Entry]) -> None:
    """Set an open commit's whole tree (pipeline output commits): a delta on a finished parent
    with a short chain, otherwise a full layer."""
    for (child_id,) in conn.execute(
        "SELECT id FROM commits WHERE parent_id = ? AND layer_full = 0", (commit_id,)
    ).fetchall():  # deltas on the old tree keep their trees
        _write_full(conn, child_id, entries(conn, child_id))
    parent = conn.execute("SELECT parent_id FROM commits WHERE id = ?", (commit_id,)).fetchone()
    parent_id = parent[0] if parent else None
    depth = _delta_depth(conn, parent_id)
    if depth is None:
        _write_full(conn, commit_id, items)
        return
    before = {e.path: e for e in entries(conn, parent_id)}  # type: ignore[arg-type]
    new = {e.path: e for e in items}
    conn.execute("DELETE FROM files WHERE commit_id = ?", (commit_id,))
    changed = [e for p, e in new.items() if before.get(p) != e]
    gone = [Entry(p, TOMBSTONE, -1) for p in before if p not in new]
    conn.executemany(
        "INSERT OR REPLACE INTO files(commit_id, path, blob, size, datum) VALUES (?, ?, ?, ?, ?)",
        [(commit_id, e.path, e.blob, e.size, e.datum) for e in (*changed, *gone)],
    )
    _set_kind(conn, commit_id, False, depth)


def reset_to_parent(conn: sqlite3.Connection, commit_id: int) -> None:
    """Drop an open commit's own changes: its tree becomes its parent's again."""
    parent = conn.execute("SELECT parent_id FROM commits WHERE id = ?", (commit_id,)).fetchone()
    conn.execute("DELETE FROM files WHERE commit_id = ?", (commit_id,))
    start_layer(conn, commit_id, parent[0] if parent else None)


def fold_into_children(conn: sqlite3.Connection, commit_id: int) -> None:
    """Before ``commit_id`` leaves its children's chain (squash): make each delta child hold
    what it inherited from it, so the child's tree stays the same on the new parent."""
    own_full = _is_full(conn, commit_id)
    children = conn.execute("SELECT id, layer_full FROM commits WHERE parent_id = ?", (commit_id,)).fetchall()
    for child_id, child_full in children:
        if child_full:
            continue
        if own_full:
            _write_full(conn, child_id, entries(conn, child_id))
            continue
        inherited = conn.execute(
            "SELECT path, blob, size, datum FROM files WHERE commit_id = ? AND path NOT IN "
            "(SELECT path FROM files WHERE commit_id = ?)",
            (commit_id, child_id),
        ).fetchall()
        conn.executemany(
            "INSERT INTO files(commit_id, path, blob, size, datum) VALUES (?, ?, ?, ?, ?)",
            [(child_id, *r) for r in inherited],
        )
        depth = conn.execute("SELECT layer_depth FROM commits WHERE id = ?", (commit_id,)).fetchone()[0]
        _set_kind(conn, child_id, False, depth)


def drop(conn: sqlite3.Connection, commit_id: int) -> None:
    """Remove a commit's layer (the commit is being deleted)."""
    conn.execute("DELETE FROM files WHERE commit_id = ?", (commit_id,))
