"""Content-addressed blob store: file content named by its BLAKE2b-256 hash.

Writes go to a temporary file, are fsynced, then renamed to the hash name, so a blob
is either complete or absent. Identical content is stored once. Blobs are never
modified after they are named, which is what makes hard links into sandboxes safe
for readers.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pachd_lite.storage.small_blobs import SMALL_BLOB_MAX, SmallBlobs

READ_CHUNK = 4 * 1024 * 1024
PARALLEL_HASH_MIN = 1024 * 1024
_HASH_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="blob-hash")
_UNLINK_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-unlink")
EMPTY_HASH = hashlib.blake2b(b"", digest_size=32).hexdigest()
# A blob stored or deduplicated this recently is never collected even if nothing refers to it yet:
# its writer has not recorded it in the metadata store. Writers that record it say so (release).
PIN_GRACE = 600.0


def new_hasher() -> hashlib._Hash:  # type: ignore[name-defined]
    return hashlib.blake2b(digest_size=32)


def new_hasher_of(data: bytes) -> str:
    hasher = new_hasher()
    hasher.update(data)
    return hasher.hexdigest()


def _sync_filesystem(path: Path) -> None:
    """syncfs(2) on the filesystem holding ``path`` (os.sync where it is missing)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if getattr(libc, "syncfs", None) is None or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


class BlobWriter:
    """Streams bytes into a temporary file; :meth:`commit` names it by its hash."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="upload-")
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._tmp = Path(name)
        self._hasher = new_hasher()
        self.size = 0
        self._done = False

    def write(self, data: bytes | memoryview) -> None:
        if len(data) >= PARALLEL_HASH_MIN:
            # hashing and writing both release the GIL: overlap them for large chunks
            pending = _HASH_POOL.submit(self._hasher.update, data)
            self._write_all(data)
            pending.result()
        else:
            self._hasher.update(data)
            self._write_all(data)
        self.size += len(data)

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written:]

    def commit(self) -> str:
        """fsync, rename to the hash name, return the hash."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = self._hasher.hexdigest()
        self._store._adopt(self._tmp, digest)
        self._done = True
        return digest

    def abort(self) -> None:
        if not self._done:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
            self._done = True


class BlobStore:
    """Blobs under ``root/blobs/ab/<hash>``, small ones of :meth:`put_small_many` in
    ``root/small-blobs.sqlite``; temporary files under ``root/tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "blobs"
        self.tmp_dir = root / "tmp"
        # naming, deduplicating and collecting blobs are serialised; pins: digest -> [holders, time]
        self._lock = threading.Lock()
        self._pins: dict[str, list[float]] = {}
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        # Leftovers of uploads interrupted by a crash are garbage.
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._small = SmallBlobs(root / "small-blobs.sqlite")
        self.put_bytes(b"")

    def close(self) -> None:
        self._small.close()

    def path(self, digest: str) -> Path:
        """Where a blob stored as a file lives (small blobs have no path: read them with
        :meth:`read_chunks`)."""
        return self.blob_dir / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return digest in self._small or self.path(digest).exists()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes) -> str:
        writer = self.writer()
        writer.write(data)
        return writer.commit()

    def put_small_many(self, datas: list[bytes]) -> list[str]:
        """Store many small blobs at once (the datum meta of a big job): those up to
        SMALL_BLOB_MAX bytes as rows of one table in one transaction, larger ones as files with
        one filesystem sync. Each is pinned as by :meth:`put_bytes` until released. Content
        already stored is not written again."""
        digests = [new_hasher_of(data) for data in datas]
        rows: dict[str, bytes] = {}
        files: dict[str, bytes] = {}
        for data, digest in zip(datas, digests, strict=True):
            if digest in rows or digest in files:  # again in this batch: pinned once per occurrence,
                with self._lock:  # as the caller releases each
                    self._pin(digest)
                continue
            if self._pin_if_stored(digest):
                continue
            (rows if len(data) <= SMALL_BLOB_MAX else files)[digest] = data
        if rows:
            with self._lock:  # pinned before a collection can see them unreferenced
                for digest in rows:
                    self._pin(digest)
            self._small.put_many(rows)
        # One after the other: creating files in one folder is serialised by the kernel anyway
        # (the folder's lock), so threads only added CPU spinning on that lock.
        staged = {digest: self._write_tmp(data) for digest, data in files.items()}
        if staged:
            _sync_filesystem(self.tmp_dir)  # complete on disk before they are named
        for digest, tmp in staged.items():
            self._adopt(tmp, digest, read_only=True)
        return digests

    def _write_tmp(self, data: bytes) -> Path:
        """``data`` in a new read-only temporary file (not synced)."""
        tmp = self.tmp_dir / f"small-{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        return tmp

    def _pin_if_stored(self, digest: str) -> bool:
        with self._lock:
            if not self.exists(digest):
                return False
            self._pin(digest)
            return True

    def _pin(self, digest: str) -> None:
        """Keep a blob from collection until :meth:`release` (or PIN_GRACE); caller holds the lock."""
        pin = self._pins.setdefault(digest, [0, 0.0])
        pin[0] += 1
        pin[1] = time.monotonic()

    def release(self, digest: str) -> None:
        """The metadata store now refers to ``digest`` (or the write was abandoned)."""
        with self._lock:
            pin = self._pins.get(digest)
            if pin is not None:
                pin[0] = max(0, pin[0] - 1)
                pin[1] = time.monotonic()  # a collection that read references before now keeps it

    def _adopt(self, tmp: Path, digest: str, read_only: bool = False) -> None:
        target = self.path(digest)
        with self._lock:
            self._pin(digest)
            if target.exists():
                # Content already stored (a re-upload): freeing a large file's blocks takes a while,
                # so do it off the request's path. A crash before it runs leaves it in tmp/, which
                # is emptied at start.
                _UNLINK_POOL.submit(tmp.unlink, missing_ok=True)
                return
            target.parent.mkdir(exist_ok=True)
            if not read_only:
                os.chmod(tmp, 0o444)
            os.replace(tmp, target)

    def ingest_file(self, source: Path, move: bool = False, link: bool = True) -> tuple[str, int]:
        """Store a local file without copying its bytes when possible.

        The file is hashed, fsynced and then hard-linked (or, with ``move``, renamed) into
        the store; a copy is made when linking is impossible (other filesystem), when
        ``link`` is false (a file someone else owns, e.g. a symlink target), or when a moved
        file has other names (another hard link could still change it). The caller must not
        modify ``source`` afterwards.
        """
        hasher = new_hasher()
        size = 0
        with open(source, "rb") as fh:
            while chunk := fh.read(READ_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
            os.fsync(fh.fileno())
        digest = hasher.hexdigest()
        target = self.path(digest)
        if not link or (move and os.stat(source).st_nlink > 1):
            return self._copy_in(source), size
        with self._lock:
            self._pin(digest)
            if target.exists():
                return digest, size
            target.parent.mkdir(exist_ok=True)
            try:
                if move:
                    os.chmod(source, 0o444)  # ours now: read-only, like uploaded blobs
                    os.replace(source, target)
                else:
                    os.link(source, target)
                linked = True
            except FileExistsError:
                linked = True
            except OSError:
                linked = False
        return (digest, size) if linked else (self._copy_in(source), size)

    def _copy_in(self, source: Path) -> str:
        writer = self.writer()
        try:
            with open(source, "rb") as fh:
                while chunk := fh.read(READ_CHUNK):
                    writer.write(chunk)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    def materialise(self, digest: str, dest: Path) -> None:
        """Place the blob at ``dest`` by hard link (copy if linking fails; written for a small blob)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        small = self._small.get(digest)
        if small is not None:
            dest.write_bytes(small)
            os.chmod(dest, 0o444)  # read-only, as a hard-linked blob is
            return
        try:
            os.link(self.path(digest), dest)
        except OSError:
            shutil.copyfile(self.path(digest), dest)

    def collect_garbage(self, referenced: set[str], read_at: float | None = None) -> tuple[int, int, int]:
        """Delete blobs nothing refers to (deleted repos, dropped commits, crashed uploads).

        ``referenced`` was read from the metadata store at ``read_at`` (``time.monotonic()``; None:
        nothing is writing). A blob pinned by a writer, or released after ``read_at``, is kept: its
        reference may be newer than the set. Returns (blobs removed, bytes freed, blobs kept only
        because they are pinned).
        """
        removed = freed = kept = 0
        for sub in self.blob_dir.iterdir():
            if not sub.is_dir():
                continue
            names = [b.name for b in sub.iterdir() if b.name not in referenced and b.name != EMPTY_HASH]
            if not names:
                continue
            with self._lock:
                names, pinned = self._unpinned(names, read_at)
                kept += pinned
                for name in names:
                    blob = sub / name
                    try:
                        freed += blob.stat().st_size
                        blob.unlink()
                        removed += 1
                    except OSError:
                        pass
        with self._lock:
            names, pinned = self._unpinned(self._small.digests() - referenced, read_at)
            kept += pinned
            freed += self._small.delete(names)
            removed += len(names)
        with self._lock:  # forget pins whose references the set already shows
            now = time.monotonic()
            for name in [n for n, p in self._pins.items() if not p[0] or now - p[1] >= PIN_GRACE]:
                if read_at is None or self._pins[name][1] < read_at:
                    del self._pins[name]
        return removed, freed, kept

    def _unpinned(self, names: Iterable[str], read_at: float | None) -> tuple[list[str], int]:
        """Of unreferenced ``names``, those a collection may delete, and how many pins keep;
        caller holds the lock."""
        now = time.monotonic()
        free, kept = [], 0
        for name in names:
            pin = self._pins.get(name)
            if pin is not None:
                if (pin[0] and now - pin[1] < PIN_GRACE) or (read_at is not None and pin[1] >= read_at):
                    kept += 1
                    continue
                del self._pins[name]
            free.append(name)
        return free, kept

    def read_chunks(self, digest: str, offset: int = 0, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        small = self._small.get(digest)
        if small is not None:
            for start in range(offset, len(small), chunk_size):
                yield small[start : start + chunk_size]
            return
        with open(self.path(digest), "rb") as fh:
            if offset:
                fh.seek(offset)
            while chunk := fh.read(chunk_size):
                yield chunk
