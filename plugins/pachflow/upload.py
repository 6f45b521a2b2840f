"""Push local files into ``repo@branch`` as one commit, or into several branches as one commit set.

The SDK's ``client.pfs.commit()`` context finishes the commit in ``finally``, so a failed
upload would leave a partial commit that looks complete. Here it is all or nothing: the commits
are started and finished explicitly (several in one Pachyderm transaction, so they share one
commit-set id and downstream pipelines run one job on all of them), and on failure every commit
of the set is dropped (or, when the server cannot drop it, finished with ``error`` set, so
downstream pipelines treat it as failed input and readers see the parent's content).

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


@dataclass(frozen=True)
class RepoUpload:
    """What to push into one branch: the planned items and the commit description."""

    branch: Any
    items: Sequence[UploadItem]
    description: str = ""


@dataclass
class CommitSetResult:
    """Outcome of :func:`push_commit_set`: the commit-set id (None when nothing changed) and, per
    ``project/repo@branch``, what was sent (``commit_id`` None for a repo left out as unchanged)."""

    commit_id: str | None
    repos: dict[str, UploadResult]

    @property
    def bytes_sent(self) -> int:
        return sum(r.bytes_sent for r in self.repos.values())


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
    result = push_commit_set(
        client,
        [RepoUpload(branch, items, description)],
        force=force,
        checksum=checksum,
        progress_every=progress_every,
    )
    return next(iter(result.repos.values()))


def push_commit_set(
    client: Client,
    uploads: Sequence[RepoUpload],
    *,
    force: bool = False,
    checksum: bool = False,
    progress_every: float = 5.0,
) -> CommitSetResult:
    """Upload into several branches as ONE commit set, so downstream pipelines run one job on all of it.

    Branches whose content is unchanged are left out (all are pushed with ``force``); when none
    changed nothing is committed. The commits are started together in one Pachyderm transaction
    (pachd gives every commit of a transaction the same id), then the files are written into the
    open commits and the commits finished. A failure anywhere closes every commit of the set as
    failed and drops the set, so no branch keeps a half-written head.
    """
    comparisons: list[tuple[RepoUpload, _Comparison]] = []
    results: dict[str, UploadResult] = {}
    for up in uploads:
        cmp = (
            _Comparison(list(up.items), {}, None, {})
            if force
            else _compare(client, up.branch, up.items, checksum=checksum)
        )
        unchanged = [i.path for i in up.items if i not in cmp.changed]
        results[_branch_uri(up.branch)] = UploadResult(None, [], unchanged, 0)
        if cmp.changed:
            comparisons.append((up, cmp))
        else:
            log.info(
                "%s: all %d files unchanged, left out of the commit set",
                _branch_uri(up.branch),
                len(up.items),
            )
    if not comparisons:
        return CommitSetResult(commit_id=None, repos=results)

    total = sum(i.size for _, cmp in comparisons for i in cmp.changed)
    progress = _Progress(total, progress_every)
    commits = _start_commits(client, [(up.branch, up.description) for up, _ in comparisons])
    set_id = commits[0].id
    log.info(
        "Started commit set %s on %s: %d files, %s",
        set_id,
        ", ".join(_branch_uri(up.branch) for up, _ in comparisons),
        sum(len(cmp.changed) for _, cmp in comparisons),
        _human(total),
    )
    finished: list[Any] = []
    try:
        for (up, cmp), commit in zip(comparisons, commits, strict=True):
            uploaded: dict[str, dict[str, Any]] = {}
            sent_before = progress.sent
            for n, item in enumerate(cmp.changed, 1):
                with item.local.open("rb") as fh:
                    reader = _CountingReader(fh, progress.add)
                    client.pfs.put_file_from_file(commit=commit, path=item.path, file=reader)
                uploaded[item.path] = reader.entry()
                log.info(
                    "  %s [%d/%d] %s -> %s (%s)",
                    up.branch.repo.name,
                    n,
                    len(cmp.changed),
                    item.local,
                    item.path,
                    _human(item.size),
                )
            _write_manifest(client, up.branch, commit, cmp, uploaded)
            results[_branch_uri(up.branch)] = UploadResult(
                commit_id=commit.id,
                uploaded=[i.path for i in cmp.changed],
                unchanged=results[_branch_uri(up.branch)].unchanged,
                bytes_sent=progress.sent - sent_before,
            )
        for commit in commits:
            client.pfs.finish_commit(commit=commit)
            finished.append(commit)
    except BaseException as err:
        _abandon(client, set_id, [c for c in commits if c not in finished], err)
        raise
    log.info("Finished commit set %s: %s sent", set_id, _human(progress.sent))
    return CommitSetResult(commit_id=set_id, repos=results)


class _Progress:
    """Bytes sent so far, logged at most every ``every`` seconds."""

    def __init__(self, total: int, every: float) -> None:
        self.total, self.every, self.sent = total, every, 0
        self._last = time.monotonic()

    def add(self, n: int) -> None:
        self.sent += n
        if time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            log.info(
                "Uploaded %s of %s (%.0f%%)",
                _human(self.sent),
                _human(self.total),
                100 * self.sent / max(self.total, 1),
            )


def _start_commits(client: Client, targets: Sequence[tuple[Any, str]]) -> list[Any]:
    """Start one commit per branch; several are started in one transaction so they share one id.

    File writes are not allowed inside a transaction (pachd, and the SDK refuses them), so the
    transaction holds only the StartCommit calls; the files go into the open commits afterwards.
    The transaction calls go through a second client carrying the ``pach-transaction`` metadata:
    the SDK's own ``client.transaction`` helpers would rebuild the caller's client in place.
    """
    if len(targets) == 1:
        branch, description = targets[0]
        return [client.pfs.start_commit(branch=branch, description=description)]
    from pachyderm_sdk.api import transaction as txn_api

    txn = txn_api.ApiStub.start_transaction(client.transaction)
    try:
        inside = _client_in_transaction(client, txn.id)
        try:
            commits = [inside.pfs.start_commit(branch=b, description=d) for b, d in targets]
        finally:
            inside._channel.close()
        txn_api.ApiStub.finish_transaction(client.transaction, transaction=txn)
    except BaseException:
        try:
            txn_api.ApiStub.delete_transaction(client.transaction, transaction=txn)
        except Exception as err:  # already finished or gone: nothing was committed by it
            log.debug("Could not delete transaction %s: %s", txn.id, err)
        raise
    ids = {c.id for c in commits}
    if len(ids) != 1:
        raise RuntimeError(f"pachd gave the commits of one transaction different ids: {sorted(ids)}")
    return commits


def _client_in_transaction(client: Client, transaction_id: str) -> Client:
    """A client to the same pachd, with the same credentials, whose calls run in ``transaction_id``."""
    from pachyderm_sdk import Client

    host, _, port = client.address.rpartition(":")
    return Client(
        host=host,
        port=int(port),
        auth_token=client.auth_token,
        root_certs=client.root_certs,
        transaction_id=transaction_id,
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


def _abandon(client: Client, set_id: str, open_commits: Sequence[Any], err: BaseException) -> None:
    """Close the half-written commits as failed (``error`` set), then try to drop the whole set.

    Finishing with ``error`` works on every server and is what downstream pipelines understand
    (their jobs become unrunnable, readers see the parent's content); dropping the finished,
    failed commit set then puts every branch back on its last complete commit where the server
    allows (all commits of the set, downstream ones included, must be finished first).
    """
    from pachyderm_sdk.api import pfs

    reason = f"pachflow upload failed: {type(err).__name__}: {err}"[:2000]
    for commit in open_commits:
        try:
            client.pfs.finish_commit(commit=commit, error=reason)
        except Exception as finish_err:
            log.error(
                "Upload failed and commit %s could not be closed as failed: %s",
                _commit_uri(commit),
                finish_err,
            )
    try:
        _wait_set_finished(client, set_id)
        client.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=set_id))
        log.error("Upload failed; commit set %s was marked failed and dropped (%s)", set_id, reason)
    except Exception as drop_err:
        log.error(
            "Upload failed; commit set %s is finished with error set (could not drop it: %s): %s",
            set_id,
            drop_err.details() if hasattr(drop_err, "details") else drop_err,
            reason,
        )


def _wait_set_finished(client: Client, set_id: str, timeout: float = 120.0) -> None:
    """Poll until every commit of the set is finished (downstream jobs of failed input end quickly)."""
    from pachyderm_sdk.api import pfs

    from pachflow.waiting import is_set

    deadline = time.monotonic() + timeout
    while True:
        infos = list(client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=set_id)))
        if all(is_set(i.finished) for i in infos if i.commit.id == set_id):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"commit set {set_id} not finished after {timeout:g} s")
        time.sleep(0.2)


def _commit_uri(commit: Any) -> str:
    return f"{commit.repo.project.name}/{commit.repo.name}@{commit.id}"


def _branch_uri(branch: Any) -> str:
    return f"{branch.repo.project.name}/{branch.repo.name}@{branch.name}"


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"
