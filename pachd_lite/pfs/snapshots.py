"""A commit's tree in memory: pachd-style FileInfo (sizes and hashes of directories too) for any path.

A commit's tree (path -> blob) lives in SQLite as layers (pachd_lite.pfs.layers). Directories are
implicit: a directory exists when a file lies below it.
"""

from __future__ import annotations

import bisect
import hashlib
import sqlite3
from collections.abc import Iterable

from pachd_lite import calls
from pachd_lite.errors import NotFound
from pachd_lite.pfs import layers
from pachd_lite.pfs.commits import commit_ref, resolve_commit
from pachd_lite.pfs.glob import glob_match, literal_prefix
from pachd_lite.pfs.layers import Entry
from pachd_lite.pfs.model import CommitRef, FileInfo, PfsContext

GLOB_CHARS = set("*?[{(")


def load_entries(conn: sqlite3.Connection, commit_id: int, under: str = "/") -> list[Entry]:
    """File entries of a commit at or below ``under`` (a cleaned path), sorted by path."""
    return layers.entries(conn, commit_id, under)


class Snapshot:
    """An in-memory view of (part of) a commit's tree with pachd-style FileInfo for any path."""

    def __init__(self, commit: CommitRef, entries: Iterable[Entry], committed: float | None) -> None:
        self.commit = commit
        self.committed = committed
        self.files: dict[str, Entry] = {}
        self.dirs: dict[str, set[str]] = {"/": set()}
        for e in entries:
            self.files[e.path] = e
            child = e.path
            while child != "/":
                parent = child.rsplit("/", 1)[0] or "/"
                key = parent if parent == "/" else parent + "/"
                name = child + "/" if child != e.path else child
                self.dirs.setdefault(key, set()).add(name)
                child = parent
        self._sorted: list[str] | None = None
        self._hash_memo: dict[str, bytes] = {}
        self._size_memo: dict[str, int] = {}

    def is_file(self, path: str) -> bool:
        return path in self.files

    def is_dir(self, path: str) -> bool:
        return (path if path == "/" else path + "/") in self.dirs

    def _dir_hash(self, key: str) -> bytes:
        # iterative post-order: trees of any depth (no recursion limit)
        stack = [(key, False)]
        while stack:
            current, children_done = stack.pop()
            if current in self._hash_memo:
                continue
            children = sorted(self.dirs.get(current, ()))
            if not children_done:
                stack.append((current, True))
                stack.extend((c, False) for c in children if c.endswith("/") and c not in self._hash_memo)
                continue
            h = hashlib.blake2b(digest_size=32)
            size = 0
            for child in children:
                if child.endswith("/"):
                    h.update(self._hash_memo[child])
                    size += self._size_memo[child]
                else:
                    h.update(bytes.fromhex(self.files[child].blob))
                    size += self.files[child].size
            self._hash_memo[current] = h.digest()
            self._size_memo[current] = size
        return self._hash_memo[key]

    def info(self, path: str) -> FileInfo:
        """FileInfo of a file (``/a``) or directory (``/a`` or ``/a/``)."""
        bare = path.rstrip("/") or "/"
        if bare in self.files and not path.endswith("/"):
            e = self.files[bare]
            return FileInfo(
                self.commit, bare, False, e.size, bytes.fromhex(e.blob), self.committed, blob=e.blob
            )
        key = "/" if bare == "/" else bare + "/"
        if key not in self.dirs:
            raise NotFound(f"file {bare} not found in repo {self.commit.repo} at commit {self.commit.id}")
        digest = self._dir_hash(key)
        return FileInfo(
            self.commit,
            key,
            True,
            self._size_memo[key],
            digest,
            self.committed,
            children=sorted(self.dirs[key]),
        )

    def all_paths(self) -> list[str]:
        """Every file and directory (directories with trailing ``/``), root included, sorted."""
        if self._sorted is None:
            self._sorted = sorted(set(self.files) | set(self.dirs))
        return self._sorted

    def walk(self, path: str) -> list[FileInfo]:
        start = self.info(path)
        if not start.is_dir:
            return [start]
        prefix = start.path
        paths = self.all_paths()
        lo = bisect.bisect_left(paths, prefix)
        hi = bisect.bisect_left(paths, prefix + "\U0010ffff")
        return [self.info(p) for p in paths[lo:hi]]


def _finished_time(row: sqlite3.Row) -> float | None:
    return row["finished"]


def snapshot(ctx: PfsContext, ref: CommitRef, under: str = "/") -> Snapshot:
    with ctx.db.read() as conn:
        row = resolve_commit(conn, ref)
        return Snapshot(commit_ref(conn, row), load_entries(conn, row["id"], under), _finished_time(row))


def snapshot_of_row(conn: sqlite3.Connection, row: sqlite3.Row, under: str = "/") -> Snapshot:
    return Snapshot(commit_ref(conn, row), load_entries(conn, row["id"], under), _finished_time(row))


def subtree_root(path: str) -> str:
    """The deepest directory that can contain every match of a glob or the path itself."""
    if not any(c in GLOB_CHARS for c in path):
        return path
    prefix = literal_prefix(path)
    return prefix.rsplit("/", 1)[0] or "/"


def glob_snapshot(snap: Snapshot, pattern: str) -> list[FileInfo]:
    if not snap.files:
        return []  # an empty commit has no root to match: zero datums, as in pachd
    out = []
    for p in snap.all_paths():
        calls.check()
        if glob_match(pattern, p):
            out.append(snap.info(p))
    return out
