"""Reading files: inspect, list, walk, glob, the file a GetFile names, GetFileTAR's entries, diff, and
the commits that changed a path (FindCommits)."""

from __future__ import annotations

from pachd_lite import calls
from pachd_lite.errors import InvalidArgument, NotFound
from pachd_lite.pfs.commits import commit_ref, resolve_commit
from pachd_lite.pfs.model import CommitRef, FileInfo, PfsContext
from pachd_lite.pfs.names import clean_path
from pachd_lite.pfs.snapshots import (
    GLOB_CHARS,
    Snapshot,
    glob_snapshot,
    load_entries,
    snapshot,
    snapshot_of_row,
    subtree_root,
)


def inspect_file(ctx: PfsContext, ref: CommitRef, path: str) -> FileInfo:
    path_c = clean_path(path)
    return snapshot(ctx, ref, path_c).info(path_c)


def list_file(
    ctx: PfsContext, ref: CommitRef, path: str, marker: str = "", number: int = 0, reverse: bool = False
) -> list[FileInfo]:
    """Direct children of a directory (or the file itself)."""
    path_c = clean_path(path)
    snap = snapshot(ctx, ref, path_c)
    info = snap.info(path_c)
    infos = [snap.info(c) for c in info.children] if info.is_dir else [info]
    return _page(infos, marker, number, reverse)


def walk_file(
    ctx: PfsContext, ref: CommitRef, path: str, marker: str = "", number: int = 0, reverse: bool = False
) -> list[FileInfo]:
    path_c = clean_path(path)
    return _page(snapshot(ctx, ref, path_c).walk(path_c), marker, number, reverse)


def _page(infos: list[FileInfo], marker: str, number: int, reverse: bool) -> list[FileInfo]:
    if reverse:
        infos = infos[::-1]
    if marker:
        infos = [i for i in infos if (i.path < marker if reverse else i.path > marker)]
    if number:
        infos = infos[:number]
    return infos


def glob_files(ctx: PfsContext, ref: CommitRef, pattern: str) -> list[FileInfo]:
    """Every file and directory of a commit matching a pachd glob, sorted by path (GlobFile)."""
    snap = snapshot(ctx, ref, subtree_root(clean_path(pattern) if pattern.strip("/") else "/"))
    return glob_snapshot(snap, pattern)


def file_for_read(ctx: PfsContext, ref: CommitRef, path: str) -> tuple[FileInfo, Snapshot]:
    """The single regular file a GetFile path (possibly a glob) names."""
    path = path or "/"
    if any(c in GLOB_CHARS for c in path):
        snap = snapshot(ctx, ref, subtree_root(path))
        matches = [i for i in glob_snapshot(snap, path) if not i.is_dir]
        if not matches:
            raise NotFound(f"no file matches {path} in repo {ref.repo} at commit {snap.commit.id}")
        if len(matches) > 1:
            raise InvalidArgument(
                f"{path} matches {len(matches)} files in repo {ref.repo}: GetFile needs exactly one"
            )
        return matches[0], snap
    path_c = clean_path(path)
    snap = snapshot(ctx, ref, path_c)
    info = snap.info(path_c)
    if info.is_dir:
        raise InvalidArgument(
            f"{path_c} in repo {ref.repo} is a directory: use GetFileTAR to read directories"
        )
    return info, snap


def tar_infos(ctx: PfsContext, ref: CommitRef, path: str) -> list[FileInfo]:
    """Files and directories to put in a GetFileTAR stream (each match with its subtree)."""
    path = path or "/"
    if any(c in GLOB_CHARS for c in path):
        snap = snapshot(ctx, ref, subtree_root(path))
        matches = glob_snapshot(snap, path)
        if not matches:
            raise NotFound(f"no file matches {path} in repo {ref.repo} at commit {snap.commit.id}")
    else:
        path_c = clean_path(path)
        snap = snapshot(ctx, ref, path_c)
        matches = [snap.info(path_c)]
    seen: dict[str, FileInfo] = {}
    for m in matches:
        for i in snap.walk(m.path):
            seen.setdefault(i.path, i)
    return [seen[p] for p in sorted(seen)]


def diff_file(
    ctx: PfsContext, new: CommitRef, new_path: str, old: CommitRef | None, old_path: str
) -> list[tuple[FileInfo | None, FileInfo | None]]:
    """Pairs (new, old) of paths whose content differs between two commits (old defaults to the parent)."""
    with ctx.db.read() as conn:
        new_row = resolve_commit(conn, new)
        if old is None:
            if new_row["parent_id"] is None:
                old_row = None
            else:
                old_row = conn.execute(
                    "SELECT * FROM commits WHERE id = ?", (new_row["parent_id"],)
                ).fetchone()
        else:
            old_row = resolve_commit(conn, old)
        np_, op_ = clean_path(new_path), clean_path(old_path or new_path)
        new_snap = snapshot_of_row(conn, new_row, np_)
        old_snap = snapshot_of_row(conn, old_row, op_) if old_row is not None else None
    new_files = {p: new_snap.info(p) for p in new_snap.files}
    old_files = {p: old_snap.info(p) for p in old_snap.files} if old_snap else {}
    out: list[tuple[FileInfo | None, FileInfo | None]] = []
    for p in sorted(set(new_files) | set(old_files)):
        n, o = new_files.get(p), old_files.get(p)
        if n is None or o is None or n.hash != o.hash:
            out.append((n, o))
    return out


def find_commits(
    ctx: PfsContext, start: CommitRef, path: str, limit: int = 0
) -> tuple[list[CommitRef], CommitRef, int]:
    """Walk back from ``start``; the commits that changed ``path`` (file or directory), newest first.

    Returns (found, last searched commit, number searched).
    """
    path_c = clean_path(path)
    found: list[CommitRef] = []
    searched = 0
    with ctx.db.read() as conn:
        row = resolve_commit(conn, start)
        last = commit_ref(conn, row)
        while row is not None:
            calls.check()  # a long history: stop when the caller has gone
            searched += 1
            last = commit_ref(conn, row)
            mine = {(e.path, e.blob) for e in load_entries(conn, row["id"], path_c)}
            parent = None
            if row["parent_id"] is not None:
                parent = conn.execute("SELECT * FROM commits WHERE id = ?", (row["parent_id"],)).fetchone()
            theirs = (
                {(e.path, e.blob) for e in load_entries(conn, parent["id"], path_c)}
                if parent is not None
                else set()
            )
            if mine != theirs:
                found.append(last)
                if limit and len(found) >= limit:
                    break
            row = parent
    return found, last, searched
