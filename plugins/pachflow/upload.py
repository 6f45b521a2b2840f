"""Push local files into ``repo@branch`` as one commit, all or nothing.

The SDK's ``client.pfs.commit()`` context finishes the commit in ``finally``, so a failed
upload would leave a partial commit that looks complete. Here the commit is started and
finished explicitly: on failure it is dropped (or, when the server cannot drop it, finished
with ``error`` set, so downstream pipelines treat it as failed input and readers see the
parent's content).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from pachyderm_sdk import Client

log = logging.getLogger(__name__)
CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class UploadItem:
    """One local file and where it goes in the repo."""

    local: Path
    path: str
    size: int


@dataclass
class UploadResult:
    """Outcome of :func:`push_files`: the commit id (None when skipped) and what was sent."""

    commit_id: str | None
    uploaded: list[str]
    unchanged: list[str]
    bytes_sent: int


def plan_upload(source: str | Sequence[str], dest: str = "/") -> list[UploadItem]:
    """Expand a file, directory or glob (or several) into upload items; paths relative to the source root."""
    sources = [source] if isinstance(source, str | Path) else list(source)
    items: dict[str, UploadItem] = {}
    for src in sources:
        src = str(src)
        p = Path(src).expanduser()
        if p.is_file():
            pairs = [(p, p.name)]
        elif p.is_dir():
            pairs = [(f, f.relative_to(p).as_posix()) for f in sorted(p.rglob("*")) if f.is_file()]
        elif glob.has_magic(src):
            root = _glob_root(src)
            matches = sorted(Path(m) for m in glob.glob(str(Path(src).expanduser()), recursive=True))
            pairs = [(f, f.relative_to(root).as_posix()) for f in matches if f.is_file()]
        else:
            raise FileNotFoundError(f"source {src!r}: no such file, directory or glob match")
        if not pairs:
            raise FileNotFoundError(f"source {src!r} contains no files")
        for local, rel in pairs:
            path = str(PurePosixPath("/") / dest.strip("/") / rel)
            items[path] = UploadItem(local=local, path=path, size=local.stat().st_size)
    return [items[k] for k in sorted(items)]


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).expanduser().parts
    root: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def changed_items(client: Client, branch: Any, items: Sequence[UploadItem]) -> list[UploadItem]:
    """Items whose content differs from (or is missing at) the branch head."""
    from pachyderm_sdk.api import pfs

    if not client.pfs.branch_exists(branch):
        return list(items)
    head = client.pfs.inspect_branch(branch=branch).head
    changed: list[UploadItem] = []
    for item in items:
        file = pfs.File(commit=head, path=item.path)
        if not client.pfs.path_exists(file):
            changed.append(item)
            continue
        info = client.pfs.inspect_file(file=file)
        if info.size_bytes != item.size or _remote_sha256(client, file) != _local_sha256(item.local):
            changed.append(item)
    return changed


def _local_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _remote_sha256(client: Client, file: Any) -> str:
    digest = hashlib.sha256()
    for chunk in client.pfs.get_file(file=file):
        digest.update(chunk.value)
    return digest.hexdigest()


class _CountingReader:
    """File wrapper that reports bytes read, so uploads can log progress."""

    def __init__(self, fh: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self._fh, self._on_bytes = fh, on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._on_bytes(len(data))
        return data


def push_files(
    client: Client,
    branch: Any,
    items: Sequence[UploadItem],
    *,
    force: bool = False,
    description: str = "",
    progress_every: float = 5.0,
) -> UploadResult:
    """Upload ``items`` into one new commit on ``branch``; skip when nothing changed (unless ``force``)."""
    todo = list(items) if force else changed_items(client, branch, items)
    unchanged = [i.path for i in items if i not in todo]
    if not todo:
        return UploadResult(commit_id=None, uploaded=[], unchanged=unchanged, bytes_sent=0)
    total = sum(i.size for i in todo)
    sent = 0
    last_log = time.monotonic()

    def on_bytes(n: int) -> None:
        nonlocal sent, last_log
        sent += n
        if time.monotonic() - last_log >= progress_every:
            last_log = time.monotonic()
            log.info("Uploaded %s of %s (%.0f%%)", _human(sent), _human(total), 100 * sent / max(total, 1))

    commit = client.pfs.start_commit(branch=branch, description=description)
    log.info(
        "Started commit %s on %s: %d files, %s", commit.id, _branch_uri(branch), len(todo), _human(total)
    )
    try:
        for n, item in enumerate(todo, 1):
            with item.local.open("rb") as fh:
                client.pfs.put_file_from_file(
                    commit=commit, path=item.path, file=_CountingReader(fh, on_bytes)
                )
            log.info("  [%d/%d] %s -> %s (%s)", n, len(todo), item.local, item.path, _human(item.size))
    except BaseException as err:
        _abandon(client, commit, err)
        raise
    client.pfs.finish_commit(commit=commit)
    log.info("Finished commit %s: %d files, %s sent", commit.id, len(todo), _human(sent))
    return UploadResult(
        commit_id=commit.id, uploaded=[i.path for i in todo], unchanged=unchanged, bytes_sent=sent
    )


def _abandon(client: Client, commit: Any, err: BaseException) -> None:
    """Close a half-written commit as failed (``error`` set), then try to drop it entirely.

    Finishing with ``error`` works on every server and is what downstream pipelines understand
    (their jobs become unrunnable, readers see the parent's content); dropping the finished,
    failed commit set then puts the branch back on the last complete commit where the server allows.
    """
    from pachyderm_sdk.api import pfs

    reason = f"pachflow upload failed: {type(err).__name__}: {err}"[:2000]
    try:
        client.pfs.finish_commit(commit=commit, error=reason)
    except Exception as finish_err:
        log.error("Upload failed and commit %s could not be closed as failed: %s", commit.id, finish_err)
        return
    try:
        client.pfs.wait_commit(commit)
        client.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=commit.id))
        log.error(
            "Upload failed; the partial commit %s was marked failed and dropped (%s)", commit.id, reason
        )
    except Exception as drop_err:
        log.error(
            "Upload failed; commit %s is finished with error set (could not drop it: %s): %s",
            commit.id,
            drop_err.details() if hasattr(drop_err, "details") else drop_err,
            reason,
        )


def _branch_uri(branch: Any) -> str:
    return f"{branch.repo.project.name}/{branch.repo.name}@{branch.name}"


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"
