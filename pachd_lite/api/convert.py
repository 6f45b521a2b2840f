"""Conversions between betterproto PFS messages and domain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import betterproto
from pachyderm_sdk.api import pfs

from pachd_lite.errors import InvalidArgument
from pachd_lite.pfs.model import BranchInfo, BranchRef, CommitInfo, CommitRef, FileInfo, RepoInfo, RepoRef

DEFAULT_PROJECT = "default"


def ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def seconds(value: timedelta | None) -> float:
    return 0.0 if value is None else value.total_seconds()


# --- messages -> domain -------------------------------------------------------------------
def repo_ref(msg: pfs.Repo | None) -> RepoRef:
    if msg is None or not msg.name:
        raise InvalidArgument("a repo name is required")
    project = msg.project.name if msg.project is not None and msg.project.name else DEFAULT_PROJECT
    return RepoRef(project=project, name=msg.name, type=msg.type or "user")


def branch_ref(msg: pfs.Branch | None) -> BranchRef:
    if msg is None or not msg.name:
        raise InvalidArgument("a branch name is required")
    return BranchRef(repo=repo_ref(msg.repo), name=msg.name)


def commit_ref(msg: pfs.Commit | None) -> CommitRef:
    if msg is None:
        raise InvalidArgument("a commit is required")
    repo_msg = (
        msg.repo if msg.repo is not None and msg.repo.name else (msg.branch.repo if msg.branch else None)
    )
    branch = msg.branch.name if msg.branch is not None and msg.branch.name else ""
    if not msg.id and not branch:
        raise InvalidArgument(f"commit in repo {repo_ref(repo_msg)} must name a branch or an id")
    return CommitRef(repo=repo_ref(repo_msg), id=msg.id or "", branch=branch)


def has_commit(msg: pfs.Commit | None) -> bool:
    return msg is not None and bool(msg.id or (msg.branch is not None and msg.branch.name))


def project_from_picker(msg: pfs.ProjectPicker | None) -> str:
    return (msg.name if msg is not None else "") or DEFAULT_PROJECT


def repo_from_picker(msg: pfs.RepoPicker) -> RepoRef:
    name = msg.name
    if name is None or not name.name:
        raise InvalidArgument("repo picker needs a repo name")
    return RepoRef(project=project_from_picker(name.project), name=name.name, type=name.type or "user")


def branch_from_picker(msg: pfs.BranchPicker) -> BranchRef:
    name = msg.name
    if name is None or not name.name:
        raise InvalidArgument("branch picker needs a branch name")
    return BranchRef(repo=repo_from_picker(name.repo), name=name.name)


def commit_from_picker(msg: pfs.CommitPicker) -> CommitRef:
    field, value = betterproto.which_one_of(msg, "picker")
    if field == "branch_head":
        b = branch_from_picker(value)
        return CommitRef(repo=b.repo, branch=b.name)
    if field == "id":
        return CommitRef(repo=repo_from_picker(value.repo), id=value.id)
    if field == "ancestor":
        start = commit_from_picker(value.start)
        base = start.id or start.branch
        return CommitRef(repo=start.repo, id=f"{base}^{value.offset}")
    if field == "branch_root":
        b = branch_from_picker(value.branch)
        return CommitRef(repo=b.repo, id=f"{b.name}.{value.offset}")
    raise InvalidArgument("commit picker is empty")


# --- domain -> messages -------------------------------------------------------------------
def to_project(name: str) -> pfs.Project:
    return pfs.Project(name=name)


def to_repo(ref: RepoRef) -> pfs.Repo:
    return pfs.Repo(name=ref.name, type=ref.type, project=pfs.Project(name=ref.project))


def to_branch(ref: BranchRef) -> pfs.Branch:
    return pfs.Branch(repo=to_repo(ref.repo), name=ref.name)


def to_commit(ref: CommitRef) -> pfs.Commit:
    repo = to_repo(ref.repo)
    branch = pfs.Branch(repo=repo, name=ref.branch) if ref.branch else None
    return pfs.Commit(repo=repo, id=ref.id, branch=branch)


def to_commit_info(info: CommitInfo) -> pfs.CommitInfo:
    return pfs.CommitInfo(
        commit=to_commit(info.ref),
        origin=pfs.CommitOrigin(kind=pfs.OriginKind(info.origin)),
        description=info.description,
        parent_commit=to_commit(info.parent) if info.parent else None,
        child_commits=[to_commit(c) for c in info.children],
        started=ts(info.started),
        finishing=ts(info.finishing),
        finished=ts(info.finished),
        direct_provenance=[to_commit(c) for c in info.direct_provenance],
        direct_subvenance=[to_commit(c) for c in info.direct_subvenance],
        error=info.error,
        size_bytes_upper_bound=info.size_bytes,
        details=pfs.CommitInfoDetails(size_bytes=info.size_bytes),
        metadata=dict(info.metadata),
        created_at=ts(info.started),
        updated_at=ts(info.updated_at),
    )


def to_branch_info(info: BranchInfo) -> pfs.BranchInfo:
    return pfs.BranchInfo(
        branch=to_branch(info.ref),
        head=to_commit(info.head) if info.head else None,
        provenance=[to_branch(b) for b in info.provenance],
        subvenance=[to_branch(b) for b in info.subvenance],
        direct_provenance=[to_branch(b) for b in info.direct_provenance],
        trigger=pfs.Trigger().from_json(info.trigger) if info.trigger else None,
        metadata=dict(info.metadata),
        created_at=ts(info.created_at),
        updated_at=ts(info.updated_at),
    )


def to_repo_info(info: RepoInfo) -> pfs.RepoInfo:
    return pfs.RepoInfo(
        repo=to_repo(info.ref),
        created=ts(info.created_at),
        size_bytes_upper_bound=info.size_bytes,
        description=info.description,
        branches=[to_branch(BranchRef(info.ref, b)) for b in info.branches],
        details=pfs.RepoInfoDetails(size_bytes=info.size_bytes),
        metadata=dict(info.metadata),
    )


def to_file_info(info: FileInfo) -> pfs.FileInfo:
    return pfs.FileInfo(
        file=pfs.File(commit=to_commit(info.commit), path=info.path),
        file_type=pfs.FileType.DIR if info.is_dir else pfs.FileType.FILE,
        committed=ts(info.committed),
        size_bytes=info.size_bytes,
        hash=info.hash,
    )
