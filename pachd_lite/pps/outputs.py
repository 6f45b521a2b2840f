"""Collect a datum's /pfs/out into the blob store as copies, checking every name first.

Outputs are copied, never moved or linked: the stored blob is a new file only pachd-lite holds,
hashed from the very bytes written to it, so a process the user code left behind (or another
name for the same inode) cannot change a finished commit's content under its hash.

A name PFS cannot hold fails the datum with :class:`OutputError` naming the file: not UTF-8,
a control character (e.g. a newline), or a symlink that leads nowhere readable.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pachd_lite.errors import InvalidArgument
from pachd_lite.pfs.layers import Entry
from pachd_lite.pfs.model import PfsContext
from pachd_lite.pfs.names import clean_path

__all__ = ["OutputError", "collect_outputs"]

READ_CHUNK = 4 * 1024 * 1024


class OutputError(Exception):
    """An output file PFS cannot store; the message names it (as written, escaped)."""


def _shown(raw: bytes) -> str:
    """A file name as the user wrote it, printable: non-UTF-8 bytes as \\xNN, controls escaped."""
    text = raw.decode("utf-8", errors="backslashreplace")
    return text.encode("unicode_escape").decode("ascii").replace("\\\\x", "\\x")


def _pfs_path(out_dir: bytes, raw: bytes) -> str:
    rel = raw[len(out_dir) :].lstrip(b"/")
    try:
        text = rel.decode("utf-8")
    except UnicodeDecodeError:
        raise OutputError(f"output file /pfs/out/{_shown(rel)}: the name is not UTF-8") from None
    try:
        return clean_path("/" + text)
    except InvalidArgument:
        raise OutputError(
            f"output file /pfs/out/{_shown(rel)}: the name has a control character (PFS refuses it)"
        ) from None


def _source(raw: bytes, path: str, sandbox: bytes | None, owner: int | None) -> bytes | None:
    """What to copy for ``raw``: itself, a symlink's target, or None (skip: not a file)."""
    info = os.lstat(raw)
    source = raw
    if stat.S_ISLNK(info.st_mode):
        source = os.path.realpath(raw)
        try:
            info = os.stat(source)
        except OSError:
            return None  # dangling
        if sandbox is not None and not source.startswith(sandbox + b"/"):
            raise OutputError(
                f"output file /pfs/out{path} is a symlink out of the sandbox ({_shown(source)}); "
                "user code running as another user may only link to files under /pfs"
            )
    if not stat.S_ISREG(info.st_mode):
        return None  # directories behind links, sockets, fifos, devices: nothing to store
    if owner is not None and info.st_uid != owner and not info.st_mode & stat.S_IROTH:
        # a hard link to a file the user could not read: pachd-lite (root) must not read it for them
        raise OutputError(
            f"output file /pfs/out{path} is a file user code may not read (owner uid {info.st_uid})"
        )
    return source


def _copy_in(ctx: PfsContext, source: bytes) -> tuple[str, int]:
    writer = ctx.blobs.writer()
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            while chunk := fh.read(READ_CHUNK):
                writer.write(chunk)
        return writer.commit(), writer.size
    except BaseException:
        writer.abort()
        raise


def collect_outputs(
    ctx: PfsContext, out_dir: Path, confine_to: Path | None = None, owner: int | None = None
) -> list[Entry]:
    """Copy every regular file under ``out_dir`` into the blob store; entries sorted by path.

    Set when user code runs as another user (uid ``owner``), so that it cannot make pachd-lite
    read files that user could not: symlinks must resolve inside ``confine_to`` (its sandbox),
    and a file it does not own must be readable by everyone."""
    root = os.fsencode(out_dir)
    if not os.path.isdir(root):
        return []
    sandbox = os.fsencode(os.path.realpath(confine_to)) if confine_to else None
    entries: list[Entry] = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            raw = os.path.join(dirpath, name)
            path = _pfs_path(root, raw)
            try:
                source = _source(raw, path, sandbox, owner)
                if source is None:
                    continue
                digest, size = _copy_in(ctx, source)
            except OSError as e:
                raise OutputError(f"output file /pfs/out{path}: cannot read it: {e.strerror}") from None
            entries.append(Entry(path, digest, size))
    entries.sort(key=lambda e: e.path)
    return entries
