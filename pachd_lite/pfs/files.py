"""Files: the ModifyFile write session, reads (inspect/list/walk/glob/get/tar/diff), sandboxes.

A commit's tree (path -> blob) lives in SQLite as layers (pachd_lite.pfs.layers); a new commit
starts as its parent's tree. Directories are implicit: a directory exists when a file lies below it.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import sqlite3
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pachd_lite import calls
from pachd_lite.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from pachd_lite.pfs import commits as commits_mod
from pachd_lite.pfs import layers
from pachd_lite.pfs.commits import commit_ref, resolve_commit, start_commit_in
from pachd_lite.pfs.glob import glob_match, literal_prefix
from pachd_lite.pfs.layers import Entry
from pachd_lite.pfs.model import BranchRef, CommitRef, FileInfo, PfsContext
from pachd_lite.pfs.names import CONTROL_RE, clean_path, is_commit_id, parse_ancestry
from pachd_lite.storage.blobs import READ_CHUNK, BlobWriter

GLOB_CHARS = set("*?[{(")
ONE_OFF_WAIT = 120.0  # seconds a one-off write waits for another one-off on the same branch
_WRITE_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="upload-write")


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


def _subtree_root(path: str) -> str:
    """The deepest directory that can contain every match of a glob or the path itself."""
    if not any(c in GLOB_CHARS for c in path):
        return path
    prefix = literal_prefix(path)
    return prefix.rsplit("/", 1)[0] or "/"


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
    snap = snapshot(ctx, ref, _subtree_root(clean_path(pattern) if pattern.strip("/") else "/"))
    return glob_snapshot(snap, pattern)


def glob_snapshot(snap: Snapshot, pattern: str) -> list[FileInfo]:
    if not snap.files:
        return []  # an empty commit has no root to match: zero datums, as in pachd
    out = []
    for p in snap.all_paths():
        calls.check()
        if glob_match(pattern, p):
            out.append(snap.info(p))
    return out


def file_for_read(ctx: PfsContext, ref: CommitRef, path: str) -> tuple[FileInfo, Snapshot]:
    """The single regular file a GetFile path (possibly a glob) names."""
    path = path or "/"
    if any(c in GLOB_CHARS for c in path):
        snap = snapshot(ctx, ref, _subtree_root(path))
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
        snap = snapshot(ctx, ref, _subtree_root(path))
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


class ModifyFileSession:
    """One ModifyFile stream: operations applied in order to one open commit.

    Consecutive AddFile chunks for one path stream into a single blob; any other operation
    first finalises it. Writing to a branch whose head is finished makes a one-off commit
    that is finished when the session closes.
    """

    def __init__(self, ctx: PfsContext) -> None:
        self.ctx = ctx
        self.commit_id: int | None = None
        self.commit: CommitRef | None = None
        self.one_off = False
        self._path: str | None = None
        self._datum = ""
        self._writer: BlobWriter | None = None
        self._pending: Future[None] | None = None
        self._one_off_lock: threading.Lock | None = None

    # --- target commit -------------------------------------------------------------------
    def set_commit(self, ref: CommitRef) -> None:
        self.flush()
        self._finish_one_off()
        # a bare branch name (no id, or an id that is a branch without ancestry) allows one-offs
        anc = parse_ancestry(ref.id) if ref.id else None
        names_branch = anc is None or (not is_commit_id(ref.id) and not anc.back and not anc.from_root)
        lock = self.ctx.one_off_locks.get(ref.repo, ref.branch or ref.id) if names_branch else None
        if lock is not None and not lock.acquire(timeout=ONE_OFF_WAIT):
            raise FailedPrecondition(
                f"branch {ref.repo}@{ref.branch or ref.id} is busy: another write to it has not finished "
                f"in {ONE_OFF_WAIT:g}s"
            )
        try:
            self._open_target(ref, names_branch)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if self.one_off:
            self._one_off_lock = lock
        elif lock is not None:
            lock.release()  # joined an open commit: nothing to hold

    def _open_target(self, ref: CommitRef, names_branch: bool) -> None:
        with self.ctx.db.tx() as conn:
            try:
                row = resolve_commit(conn, ref)
            except NotFound:
                if not names_branch:
                    raise
                row = None
            if row is not None and row["finished"] is None:
                self.commit_id = row["id"]
            elif names_branch:
                branch = ref.branch or ref.id
                self.commit_id = start_commit_in(self.ctx, conn, BranchRef(ref.repo, branch))
                self.one_off = True
                # a crash before the write finishes leaves this row: start-up then drops the commit
                conn.execute("INSERT OR REPLACE INTO one_off_writes(commit_id) VALUES (?)", (self.commit_id,))
            else:
                raise FailedPrecondition(
                    f"commit {row['commit_set']} in repo {ref.repo} has already finished"
                )
            self.commit = commit_ref(
                conn, conn.execute("SELECT * FROM commits WHERE id = ?", (self.commit_id,)).fetchone()
            )

    def _require_commit(self) -> int:
        if self.commit_id is None:
            raise InvalidArgument("ModifyFile: the first message must be set_commit")
        return self.commit_id

    def _open_row(self, conn: sqlite3.Connection) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM commits WHERE id = ?", (self._require_commit(),)).fetchone()
        if row is None:
            raise NotFound(f"commit {self.commit} was deleted")
        if row["finished"] is not None:
            raise FailedPrecondition(
                f"commit {row['commit_set']} in repo {self.commit.repo} has already finished"
            )  # type: ignore[union-attr]
        return row

    # --- operations ----------------------------------------------------------------------
    def add_raw(self, path: str, data: bytes | memoryview, datum: str = "") -> None:
        path_c = clean_path(path)
        if path_c == "/":
            raise InvalidArgument("cannot add a file at the root path '/'")
        if self._path != path_c:
            self.flush()
            self._start_writer(path_c, datum)
        if data:
            # Write this chunk in the background while grpc receives the next one; at most one
            # chunk is in flight, so memory stays bounded.
            self._wait_pending()
            self._pending = _WRITE_POOL.submit(self._writer.write, data)  # type: ignore[union-attr]

    def _wait_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _start_writer(self, path: str, datum: str) -> None:
        commit_id = self._require_commit()
        with self.ctx.db.read() as conn:
            existing = layers.lookup(conn, commit_id, [path]).get(path)
        writer = self.ctx.blobs.writer()
        if existing is not None:  # AddFile appends
            for chunk in self.ctx.blobs.read_chunks(existing.blob):
                writer.write(chunk)
        self._path, self._datum, self._writer = path, datum, writer

    def flush(self) -> None:
        """Finalise the file being streamed, if any."""
        if self._writer is None:
            return
        writer, path, datum = self._writer, self._path, self._datum
        self._writer, self._path = None, None
        try:
            self._wait_pending()
            digest = writer.commit()
        except BaseException:
            writer.abort()
            raise
        try:
            with self.ctx.db.tx() as conn:
                row = self._open_row(conn)
                self._put(conn, row["id"], path, digest, writer.size, datum)  # type: ignore[arg-type]
        finally:
            self.ctx.blobs.release(digest)

    @staticmethod
    def _put(
        conn: sqlite3.Connection, commit_id: int, path: str, blob: str, size: int, datum: str = ""
    ) -> None:
        clash = layers.first_below(conn, commit_id, path)
        if clash is not None:
            raise InvalidArgument(f"cannot write file {path}: it is a directory (holds {clash})")
        parents = []
        parent = path.rsplit("/", 1)[0]
        while parent:
            parents.append(parent)
            parent = parent.rsplit("/", 1)[0]
        files_above = layers.lookup(conn, commit_id, parents)
        if files_above:
            raise InvalidArgument(f"cannot write file {path}: {max(files_above, key=len)} is a file")
        layers.put(conn, commit_id, Entry(path, blob, size, datum))

    def delete(self, path: str) -> None:
        self.flush()
        path_c = clean_path(path)
        with self.ctx.db.tx() as conn:
            row = self._open_row(conn)
            delete_path(conn, row["id"], path_c)

    def add_url(self, path: str, url: str, recursive: bool = False) -> None:
        self.flush()
        parsed = urllib.parse.urlparse(url)
        path_c = clean_path(path)
        if parsed.scheme == "file":
            local = self._allowed_local(url, parsed)
            if local.is_dir():
                if not recursive:
                    raise InvalidArgument(
                        f"add_file url {url} is a directory: set recursive to add its files"
                    )
                for root, _dirs, names in os.walk(local):
                    for name in sorted(names):
                        src = Path(root) / name
                        rel = src.relative_to(local).as_posix()
                        self._add_local(clean_path(path_c + "/" + rel), self._inside_roots(url, src))
            else:
                self._add_local(path_c, local)
        elif parsed.scheme in ("http", "https"):
            with urllib.request.urlopen(url, timeout=60) as resp:  # scheme checked above
                self.add_raw(path_c, b"")
                while chunk := resp.read(READ_CHUNK):
                    self.add_raw(path_c, chunk)
            self.flush()
        else:
            raise InvalidArgument(
                f"add_file url {url}: pachd-lite supports only file://, http:// and https:// URLs"
            )

    def _allowed_local(self, url: str, parsed: urllib.parse.ParseResult) -> Path:
        """The host path a file:// URL names, if the server allows reading it."""
        if parsed.netloc not in ("", "localhost"):
            raise InvalidArgument(f"add_file url {url}: a file:// URL must name an absolute path (file:///…)")
        if not self.ctx.file_url_roots:
            raise PermissionDenied(
                f"add_file url {url}: this pachd-lite does not read file:// URLs (start it with "
                "--allow-file-urls DIR to allow a folder)"
            )
        local = self._inside_roots(url, Path(urllib.parse.unquote(parsed.path)))
        if not local.exists():
            raise NotFound(f"add_file url {url}: {local} does not exist")
        return local

    def _inside_roots(self, url: str, local: Path) -> Path:
        """``local`` with symlinks and ``..`` resolved, refused unless it lies under an allowed folder."""
        if CONTROL_RE.search(str(local)) or not local.is_absolute():
            raise InvalidArgument(f"add_file url {url}: not an absolute file path")
        real = local.resolve()
        if not any(real == root or root in real.parents for root in self.ctx.file_url_roots):
            raise PermissionDenied(
                f"add_file url {url}: {local} is outside the folders this pachd-lite may read "
                "file:// URLs from (--allow-file-urls)"
            )
        return real

    def _add_local(self, path: str, local: Path) -> None:
        self.add_raw(path, b"")
        with open(local, "rb") as fh:
            while chunk := fh.read(READ_CHUNK):
                self.add_raw(path, chunk)
        self.flush()

    def copy(self, dst: str, src: CommitRef, src_path: str, append: bool = False) -> None:
        self.flush()
        dst_c, src_c = clean_path(dst), clean_path(src_path)
        with self.ctx.db.read() as conn:
            src_row = resolve_commit(conn, src)
            entries = load_entries(conn, src_row["id"], src_c)
        if not entries:
            raise NotFound(f"file {src_c} not found in repo {src.repo} at commit {src_row['commit_set']}")
        for e in entries:
            rel = e.path[len(src_c) :] if src_c != "/" else e.path
            target = clean_path(dst_c + rel) if e.path != src_c else dst_c
            if append:
                self.add_raw(target, b"")
                for chunk in self.ctx.blobs.read_chunks(e.blob):
                    self.add_raw(target, chunk)
                self.flush()
            else:
                with self.ctx.db.tx() as conn:
                    row = self._open_row(conn)
                    delete_path(conn, row["id"], target)
                    self._put(conn, row["id"], target, e.blob, e.size)

    # --- end -----------------------------------------------------------------------------
    def _finish_one_off(self) -> None:
        try:
            if self.one_off and self.commit_id is not None:
                with self.ctx.db.tx() as conn:
                    commits_mod.finish_commit_row(self.ctx, conn, self.commit_id)
                    conn.execute("DELETE FROM one_off_writes WHERE commit_id = ?", (self.commit_id,))
        finally:
            self.one_off = False
            lock, self._one_off_lock = self._one_off_lock, None
            if lock is not None:
                lock.release()

    def close(self) -> None:
        self.flush()
        self._finish_one_off()

    def abort(self) -> None:
        try:
            self._wait_pending()
        except Exception:  # the upload is being abandoned anyway
            pass
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        self._finish_one_off()


def delete_path(conn: sqlite3.Connection, commit_id: int, path: str) -> None:
    """Delete a file or a whole directory from an open commit."""
    layers.delete(conn, commit_id, path)


# --- internal helpers for PPS --------------------------------------------------------------
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


def now() -> float:
    return time.time()


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
                ModifyFileSession._put(conn, row["id"], e.path, e.blob, e.size)
    finally:
        for e in entries:
            ctx.blobs.release(e.blob)
    return len(entries)


def materialise_commit(ctx: PfsContext, ref: CommitRef, dest: Path, path: str = "/") -> int:
    """Hard-link a commit's files (under ``path``) into ``dest``; returns the number of files."""
    path_c = clean_path(path)
    snap = snapshot(ctx, ref, path_c)
    return materialise(ctx, [snap.info(path_c)], snap, dest)
