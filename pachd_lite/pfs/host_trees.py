"""Commits and folders on the host (pipeline inputs and outputs): hard-link a commit's files into a
folder, store a folder's files into an open commit, set an output commit's whole content."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from pachd_lite.errors import FailedPrecondition
from pachd_lite.pfs import layers
from pachd_lite.pfs.commits import resolve_commit
from pachd_lite.pfs.layers import Entry
from pachd_lite.pfs.model import CommitRef, FileInfo, PfsContext
from pachd_lite.pfs.modify_file import delete_path, put_file
from pachd_lite.pfs.names import clean_path
from pachd_lite.pfs.snapshots import Snapshot, snapshot


def replace_commit_files(conn: sqlite3.Connection, commit_id: int, entries: Iterable[Entry]) -> None:
    """Set an open commit's whole content (used to build pipeline output commits)."""
    layers.replace(conn, commit_id, list(entries))


def ingest_tree(ctx: PfsContext, root: Path, prefix: str = "/", move: bool = True) -> list[Entry]:
    """Store every regular file under a local directory in the blob store (moved or hard-linked)."""
    entries: list[Entry] = []
    if not root.exists():
        return entries
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            src = Path(dirpath) / name
            if src.is_symlink() or not src.is_file():
                if src.is_symlink() and src.resolve().is_file():
                    # a link may point anywhere on the host: store a copy, never share its inode
                    digest, size = ctx.blobs.ingest_file(src.resolve(), move=False, link=False)
                else:
                    continue
            else:
                digest, size = ctx.blobs.ingest_file(src, move=move)
            rel = src.relative_to(root).as_posix()
            entries.append(Entry(clean_path(prefix + "/" + rel), digest, size))
    entries.sort(key=lambda e: e.path)
    return entries


def materialise(
    ctx: PfsContext, infos: Iterable[FileInfo], snap: Snapshot, dest: Path, strip: str = ""
) -> int:
    """Hard-link the files of matched FileInfos (and their subtrees) under ``dest``; returns the count."""
    count = 0
    for info in infos:
        for item in snap.walk(info.path):
            if item.is_dir:
                (dest / item.path.lstrip("/")).mkdir(parents=True, exist_ok=True)
                continue
            rel = item.path[len(strip) :] if strip and item.path.startswith(strip) else item.path
            target = dest / rel.lstrip("/")
            if not target.exists():
                ctx.blobs.materialise(item.blob, target)
                count += 1
    return count


def write_tree_to_commit(
    ctx: PfsContext, ref: CommitRef, root: Path, prefix: str = "/", move: bool = False
) -> int:
    """Put every file under a local directory into an open commit (hard links or moves, no copies)."""
    entries = ingest_tree(ctx, root, prefix, move=move)
    try:
        with ctx.db.tx() as conn:
            row = resolve_commit(conn, ref)
            if row["finished"] is not None:
                raise FailedPrecondition(
                    f"commit {row['commit_set']} in repo {ref.repo} has already finished"
                )
            for e in entries:
                delete_path(conn, row["id"], e.path)
                put_file(conn, row["id"], e.path, e.blob, e.size)
    finally:
        for e in entries:
            ctx.blobs.release(e.blob)
    return len(entries)


def materialise_commit(ctx: PfsContext, ref: CommitRef, dest: Path, path: str = "/") -> int:
    """Hard-link a commit's files (under ``path``) into ``dest``; returns the number of files."""
    path_c = clean_path(path)
    snap = snapshot(ctx, ref, path_c)
    return materialise(ctx, [snap.info(path_c)], snap, dest)
