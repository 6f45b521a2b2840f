"""Which branch a commit is on, found the same way on pachd and on pachd-lite.

pachd 2.12 reports in ``CommitInfo.commit.branch`` the branch a commit was made on, and nothing
once that branch is deleted (even if a branch of that name comes back). A commit still reachable
from another branch is then found through the repo's branches: the branch whose head is the
commit, else the branch whose history holds it. No Airflow import: tooling and workers use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pachflow.exceptions import NoBranchForCommit

if TYPE_CHECKING:
    from pachyderm_sdk import Client


def commit_branch(client: Client, project: str, repo: str, commit_id: str, info: Any = None) -> str:
    """The branch of ``project/repo@commit_id``.

    1. the branch pachd names for the commit (the one it was made on, while that branch exists);
    2. else the one branch of the repo whose head is the commit;
    3. else the one branch whose history (head and its ancestors) holds the commit.
    ``info`` is the commit's CommitInfo when the caller has it already (saves an InspectCommit).
    Raises :class:`NoBranchForCommit` naming the commit when no branch, or more than one at the
    same step, holds it.
    """
    from pachflow.contract import pfs_commit

    commit = pfs_commit(project, repo, commit_id)
    if info is None:
        info = client.pfs.inspect_commit(commit=commit)
    if info.commit.branch and info.commit.branch.name:
        return info.commit.branch.name
    where = f"{project}/{repo}@{commit_id}"
    heads = {b.branch.name: b.head.id for b in client.pfs.list_branch(repo=commit.repo) if b.head}
    at_head = sorted(name for name, head in heads.items() if head == commit_id)
    if at_head:
        return _one(at_head, where, "have it as their head")
    holding = sorted(
        name for name, head in heads.items() if _in_history(client, commit.repo, head, commit_id)
    )
    if holding:
        return _one(holding, where, "hold it in their history")
    branches = ", ".join(sorted(heads)) or "none"
    raise NoBranchForCommit(f"commit {where} is on no branch: its branch was deleted (branches: {branches})")


def _one(names: list[str], where: str, how: str) -> str:
    if len(names) > 1:
        raise NoBranchForCommit(
            f"commit {where} is on no branch of its own and branches {', '.join(names)} {how}: "
            "name the branch"
        )
    return names[0]


def _in_history(client: Client, repo: Any, head_id: str, commit_id: str) -> bool:
    from pachyderm_sdk.api import pfs

    to = pfs.Commit(repo=repo, id=head_id)
    return any(c.commit.id == commit_id for c in client.pfs.list_commit(repo=repo, to=to))
