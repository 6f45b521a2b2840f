"""Writing files: the ModifyFile session (add, add from a URL, copy, delete) on one open commit,
one-off commits on a branch whose head is finished, and the single-file write rules."""

from __future__ import annotations

import os
import sqlite3
import threading
import urllib.parse
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pachd_lite.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from pachd_lite.pfs import commits as commits_mod
from pachd_lite.pfs import layers
from pachd_lite.pfs.commits import commit_ref, resolve_commit, start_commit_in
from pachd_lite.pfs.layers import Entry
from pachd_lite.pfs.model import BranchRef, CommitRef, PfsContext
from pachd_lite.pfs.names import CONTROL_RE, clean_path, is_commit_id, parse_ancestry
from pachd_lite.pfs.snapshots import load_entries
from pachd_lite.storage.blobs import READ_CHUNK, BlobWriter

ONE_OFF_WAIT = 120.0  # seconds a one-off write waits for another one-off on the same branch
_WRITE_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="upload-write")


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
                put_file(conn, row["id"], path, digest, writer.size, datum)  # type: ignore[arg-type]
        finally:
            self.ctx.blobs.release(digest)

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
                    put_file(conn, row["id"], target, e.blob, e.size)

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


def put_file(
    conn: sqlite3.Connection, commit_id: int, path: str, blob: str, size: int, datum: str = ""
) -> None:
    """Write one file into an open commit; refused where a directory or a file above it is in the way."""
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
