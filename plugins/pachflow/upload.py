"""Push local files into ``repo@branch`` as one commit, all or nothing.

The SDK's ``client.pfs.commit()`` context finishes the commit in ``finally``, so a failed
upload would leave a partial commit that looks complete. Here the commit is started and
finished explicitly: on failure it is dropped (or, when the server cannot drop it, finished
with ``error`` set, so downstream pipelines treat it as failed input and readers see the
parent's content).

Unchanged files are found without downloading them: every commit made here carries a manifest
in its metadata (see :func:`_compare`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from pachyderm_sdk import Client

log = logging.getLogger(__name__)
CHUNK = 4 * 1024 * 1024
MANIFEST_KEY = "pachflow.upload.manifest"
# A file modified this recently may be modified again within the same mtime tick without its
# mtime changing (git's "racy clean" problem): its entry gets no mtime, so it is always hashed.
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class UploadItem:
    """One local file and where it goes in the repo (``mtime_ns``: local mtime when planned)."""

    local: Path
    path: str
    size: int
    mtime_ns: int = -1


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
            st = local.stat()
            items[path] = UploadItem(local=local, path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)
    return [items[k] for k in sorted(items)]


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).expanduser().parts
    root: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def changed_items(
    client: Client, branch: Any, items: Sequence[UploadItem], *, checksum: bool = False
) -> list[UploadItem]:
    """Items whose content differs from (or is missing at) the branch head."""
    return _compare(client, branch, items, checksum=checksum).changed


@dataclass
class _Comparison:
    changed: list[UploadItem]
    entries: dict[str, dict[str, Any]]  # manifest entries for the unchanged items
    head_id: str | None
    head_manifest: dict[str, dict[str, Any]]


def _compare(client: Client, branch: Any, items: Sequence[UploadItem], *, checksum: bool) -> _Comparison:
    """Compare ``items`` with the branch head, using the head commit's manifest where it has one.

    An item is unchanged when the manifest has it with the local size and mtime (rsync's quick
    check; skipped with ``checksum``) and the head's file still has that size; else when the local
    sha256 equals the manifest's; else (no manifest entry) when it equals the sha256 of the
    downloaded head file. Only the head commit's own manifest is read, and it is written by the
    push that made that commit, so it describes the head's content: a later commit by another
    client (pachctl, the SDK) becomes the head without a manifest and everything falls back to
    the download comparison. A head finished with ``error`` is not trusted either.
    """
    from pachyderm_sdk.api import pfs

    if not client.pfs.branch_exists(branch):
        return _Comparison(list(items), {}, None, {})
    head = client.pfs.inspect_branch(branch=branch).head
    manifest = _read_manifest(client.pfs.inspect_commit(commit=head))
    changed: list[UploadItem] = []
    entries: dict[str, dict[str, Any]] = {}
    downloads = 0
    for item in items:
        file = pfs.File(commit=head, path=item.path)
        if not client.pfs.path_exists(file):
            changed.append(item)
            continue
        remote_size = client.pfs.inspect_file(file=file).size_bytes
        if remote_size != item.size:
            changed.append(item)
            continue
        known = manifest.get(item.path)
        if known is not None and known["size"] == remote_size:
            if not checksum and known["mtime_ns"] == item.mtime_ns:
                entries[item.path] = known
                continue
            local = _local_entry(item.local)
            same = local["sha256"] == known["sha256"]
        else:
            downloads += 1
            local = _local_entry(item.local)
            same = local["sha256"] == _remote_sha256(client, file)
        if same:
            entries[item.path] = local
        else:
            changed.append(item)
    if downloads:
        log.info("Compared %d files by downloading them (no pachflow manifest at the head)", downloads)
    return _Comparison(changed, entries, head.id, manifest)


def _read_manifest(info: Any) -> dict[str, dict[str, Any]]:
    """The valid entries of a commit's upload manifest ({} when absent, malformed or the commit failed)."""
    raw = (info.metadata or {}).get(MANIFEST_KEY)
    if not raw or info.error:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as err:
        log.warning("Ignoring malformed %s on commit %s: %s", MANIFEST_KEY, info.commit.id, err)
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        path: e
        for path, e in data.items()
        if isinstance(e, dict)
        and type(e.get("size")) is int
        and type(e.get("mtime_ns")) is int
        and isinstance(e.get("sha256"), str)
    }


def _local_entry(path: Path) -> dict[str, Any]:
    """Manifest entry of a local file, read as an upload would read it (see _CountingReader)."""
    with path.open("rb") as fh:
        reader = _CountingReader(fh, lambda n: None)
        while reader.read(CHUNK):
            pass
    return reader.entry()


def _trusted_mtime(fh: BinaryIO) -> int:
    """The open file's mtime for the quick check, or -1 (never matches) when it is too recent."""
    mtime_ns = os.fstat(fh.fileno()).st_mtime_ns
    return -1 if mtime_ns > time.time_ns() - RACY_NS else mtime_ns


def _remote_sha256(client: Client, file: Any) -> str:
    digest = hashlib.sha256()
    for chunk in client.pfs.get_file(file=file):
        digest.update(chunk.value)
    return digest.hexdigest()


class _CountingReader:
    """File wrapper that reports bytes read (progress logs) and hashes them (the manifest entry)."""

    def __init__(self, fh: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self._fh, self._on_bytes = fh, on_bytes
        self._mtime_ns = _trusted_mtime(fh)
        self._digest = hashlib.sha256()
        self._size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._digest.update(data)
        self._size += len(data)
        self._on_bytes(len(data))
        return data

    def entry(self) -> dict[str, Any]:
        """Manifest entry of what was read: a file changed while being read gets a new mtime, so
        the recorded (pre-read) mtime cannot pass the quick check against it later."""
        return {"size": self._size, "mtime_ns": self._mtime_ns, "sha256": self._digest.hexdigest()}


def push_files(
    client: Client,
    branch: Any,
    items: Sequence[UploadItem],
    *,
    force: bool = False,
    checksum: bool = False,
    description: str = "",
    progress_every: float = 5.0,
) -> UploadResult:
    """Upload ``items`` into one new commit on ``branch``; skip when nothing changed (unless ``force``).

    ``checksum`` compares content hashes even when size and mtime match the head's manifest.
    The new commit's metadata gets the manifest (``MANIFEST_KEY``) of every item, uploaded or not.
    """
    if force:
        cmp = _Comparison(list(items), {}, None, {})
    else:
        cmp = _compare(client, branch, items, checksum=checksum)
    todo = cmp.changed
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
        uploaded: dict[str, dict[str, Any]] = {}
        for n, item in enumerate(todo, 1):
            with item.local.open("rb") as fh:
                reader = _CountingReader(fh, on_bytes)
                client.pfs.put_file_from_file(commit=commit, path=item.path, file=reader)
            uploaded[item.path] = reader.entry()
            log.info("  [%d/%d] %s -> %s (%s)", n, len(todo), item.local, item.path, _human(item.size))
        _write_manifest(client, branch, commit, cmp, uploaded)
    except BaseException as err:
        _abandon(client, commit, err)
        raise
    client.pfs.finish_commit(commit=commit)
    log.info("Finished commit %s: %d files, %s sent", commit.id, len(todo), _human(sent))
    return UploadResult(
        commit_id=commit.id, uploaded=[i.path for i in todo], unchanged=unchanged, bytes_sent=sent
    )


def _write_manifest(
    client: Client, branch: Any, commit: Any, cmp: _Comparison, uploaded: dict[str, dict[str, Any]]
) -> None:
    """Record the manifest on the still-open commit, so it is part of the commit once finished.

    Entries for unchanged items (and the head manifest's other paths, which this commit does not
    touch) were checked against the compared head, so they are kept only when the new commit's
    parent is that head; if another client committed in between, only the uploaded files are
    recorded and the others fall back to a content comparison next time.
    """
    from pachflow.lineage import write_commit_metadata

    manifest = dict(uploaded)
    parent = client.pfs.inspect_commit(commit=commit).parent_commit
    if cmp.head_id is not None and parent is not None and parent.id == cmp.head_id:
        manifest = {**cmp.head_manifest, **cmp.entries, **uploaded}
    elif cmp.head_id is not None:
        log.warning(
            "Branch head moved during the push; manifest of commit %s lists only uploaded files", commit.id
        )
    value = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    project = branch.repo.project.name if branch.repo.project else "default"
    write_commit_metadata(client, project, branch.repo.name, commit.id, {MANIFEST_KEY: value})


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
