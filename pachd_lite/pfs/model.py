"""Plain domain values: references to resources and the information returned about them."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pachd_lite.storage.blobs import BlobStore
from pachd_lite.storage.db import Database

USER = "user"
SPEC = "spec"
META = "meta"

ORIGIN_USER = 1
ORIGIN_AUTO = 2

STATE_STARTED = 1
STATE_READY = 2
STATE_FINISHING = 3
STATE_FINISHED = 4


def no_redaction(text: str) -> str:
    return text


class BranchLocks:
    """One lock per branch, held by a one-off write (ModifyFile on a branch whose head is
    finished) from its start to its finish, so concurrent one-off writes to one branch each
    make their own commit instead of joining, and being cut short by, another's."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str, str, str], threading.Lock] = {}

    def get(self, repo: RepoRef, branch: str) -> threading.Lock:
        key = (repo.project or "default", repo.name, repo.type or USER, branch)
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


@dataclass(frozen=True)
class PipelineMetadataStore:
    """How EditMetadata reads and writes a pipeline's metadata inside its transaction; PPS provides
    it (PFS does not import PPS). ``get``/``set`` take (conn, project, pipeline name)."""

    get: Callable[[sqlite3.Connection, str, str], dict[str, str]]
    set: Callable[[sqlite3.Connection, str, str, dict[str, str]], None]


@dataclass
class PfsContext:
    """What every PFS operation works on: the metadata DB and the blob store.

    ``redact`` masks secrets (the auth token) in text that clients or logs will see;
    ``file_url_roots`` are the host folders ``add_file`` may read ``file://`` URLs from.
    """

    db: Database
    blobs: BlobStore
    root: Path
    redact: Callable[[str], str] = no_redaction
    file_url_roots: tuple[Path, ...] = ()
    one_off_locks: BranchLocks = field(default_factory=BranchLocks)
    # Called inside the write transaction with the row ids of new commits (PPS creates jobs here,
    # so a job exists iff its output commit does, even across a crash).
    new_commit_hooks: list[Callable[[sqlite3.Connection, list[int]], None]] = field(default_factory=list)
    # Called inside the write transaction with the row ids of commits that just finished (branch
    # triggers fire here, in the finishing transaction as in pachd).
    finished_commit_hooks: list[Callable[[sqlite3.Connection, list[int]], None]] = field(default_factory=list)
    # Set by PPS when it starts; None: no pipeline exists (EditMetadata on a pipeline is NOT_FOUND).
    pipeline_metadata: PipelineMetadataStore | None = None

    def run_new_commit_hooks(self, conn: sqlite3.Connection, commit_ids: list[int]) -> None:
        if commit_ids:
            for hook in self.new_commit_hooks:
                hook(conn, commit_ids)

    def run_finished_commit_hooks(self, conn: sqlite3.Connection, commit_ids: list[int]) -> None:
        for hook in self.finished_commit_hooks:
            hook(conn, commit_ids)


@dataclass(frozen=True)
class RepoRef:
    project: str
    name: str
    type: str = USER

    def __str__(self) -> str:
        suffix = "" if self.type == USER else f".{self.type}"
        return f"{self.project}/{self.name}{suffix}"


@dataclass(frozen=True)
class BranchRef:
    repo: RepoRef
    name: str

    def __str__(self) -> str:
        return f"{self.repo}@{self.name}"


@dataclass(frozen=True)
class CommitRef:
    """A commit as clients name it: a global id, a branch, or a branch/id with ancestry."""

    repo: RepoRef
    id: str = ""
    branch: str = ""

    def __str__(self) -> str:
        if self.branch and self.id:
            return f"{self.repo}@{self.branch}={self.id}"
        return f"{self.repo}@{self.id or self.branch}"


@dataclass
class ProjectInfo:
    name: str
    description: str
    created_at: float
    metadata: dict[str, str]


@dataclass
class RepoInfo:
    ref: RepoRef
    description: str
    created_at: float
    metadata: dict[str, str]
    branches: list[str]
    size_bytes: int


@dataclass
class BranchInfo:
    ref: BranchRef
    head: CommitRef | None
    direct_provenance: list[BranchRef]
    provenance: list[BranchRef]
    subvenance: list[BranchRef]
    metadata: dict[str, str]
    created_at: float
    updated_at: float
    trigger: str = ""


@dataclass
class CommitInfo:
    ref: CommitRef  # always with id, and branch when known
    rowid: int
    origin: int
    description: str
    parent: CommitRef | None
    children: list[CommitRef]
    started: float
    finishing: float | None
    finished: float | None
    direct_provenance: list[CommitRef]
    direct_subvenance: list[CommitRef]
    error: str
    size_bytes: int
    metadata: dict[str, str]
    updated_at: float

    @property
    def state(self) -> int:
        if self.finished is not None:
            return STATE_FINISHED
        if self.finishing is not None:
            return STATE_FINISHING
        return STATE_STARTED


@dataclass
class FileInfo:
    commit: CommitRef
    path: str  # directories end with "/"
    is_dir: bool
    size_bytes: int
    hash: bytes
    committed: float | None
    blob: str = ""
    children: list[str] = field(default_factory=list)
