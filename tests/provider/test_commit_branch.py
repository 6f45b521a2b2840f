"""pachflow.branches.commit_branch against a real pachd-lite: the branch pachd names, then the branches
that hold the commit once its own branch is deleted (pachd 2.12 then names no branch)."""

from __future__ import annotations

import pytest
from pachyderm_sdk.api import pfs

from pachflow.branches import commit_branch
from pachflow.exceptions import LineageError, NoBranchForCommit
from pachflow.rollback import _plan_branches
from tests.pachd_lite.sdk_helpers import create_repo, put

PROJECT = "default"


def _put(client, repo: str, branch: str, path: str) -> str:
    """A commit on ``branch`` adding ``path``; its id."""
    return put(client, repo, {path: b"x"}, branch).id


def _point(client, repo: str, branch: str, commit_id: str) -> None:
    client.pfs.create_branch(
        branch=pfs.Branch.from_uri(f"{repo}@{branch}"), head=pfs.Commit.from_uri(f"{repo}@{commit_id}")
    )


def _delete(client, repo: str, branch: str) -> None:
    client.pfs.delete_branch(branch=pfs.Branch.from_uri(f"{repo}@{branch}"))


def test_the_branch_the_commit_was_made_on(pachd_client):
    repo = create_repo(pachd_client, "cb")
    commit = _put(pachd_client, repo, "staging", "/a")
    _point(pachd_client, repo, "master", commit)
    assert commit_branch(pachd_client, PROJECT, repo, commit) == "staging"
    info = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo}@{commit}"))
    assert commit_branch(pachd_client, PROJECT, repo, commit, info=info) == "staging"


def test_own_branch_deleted_the_branch_whose_head_it_is(pachd_client):
    repo = create_repo(pachd_client, "cb")
    old = _put(pachd_client, repo, "staging", "/a")
    promoted = _put(pachd_client, repo, "staging", "/b")
    _point(pachd_client, repo, "master", promoted)
    _point(pachd_client, repo, "archive", old)
    _delete(pachd_client, repo, "staging")
    assert commit_branch(pachd_client, PROJECT, repo, promoted) == "master"
    assert commit_branch(pachd_client, PROJECT, repo, old) == "archive"  # a head wins over history


def test_own_branch_deleted_the_branch_whose_history_holds_it(pachd_client):
    repo = create_repo(pachd_client, "cb")
    first = _put(pachd_client, repo, "tmp", "/a")
    _point(pachd_client, repo, "master", first)
    _put(pachd_client, repo, "master", "/b")
    _delete(pachd_client, repo, "tmp")
    assert commit_branch(pachd_client, PROJECT, repo, first) == "master"


def test_no_branch_or_several_is_an_error_naming_the_commit(pachd_client):
    repo = create_repo(pachd_client, "cb")
    lost = _put(pachd_client, repo, "tmp", "/a")
    _put(pachd_client, repo, "master", "/b")  # master starts from nothing: its history lacks `lost`
    _delete(pachd_client, repo, "tmp")
    with pytest.raises(NoBranchForCommit, match=rf"commit {PROJECT}/{repo}@{lost} is on no branch: .*master"):
        commit_branch(pachd_client, PROJECT, repo, lost)
    shared = _put(pachd_client, repo, "tmp", "/c")
    _point(pachd_client, repo, "blue", shared)
    _point(pachd_client, repo, "green", shared)
    _delete(pachd_client, repo, "tmp")
    with pytest.raises(
        NoBranchForCommit, match="branches blue, green have it as their head: name the branch"
    ):
        commit_branch(pachd_client, PROJECT, repo, shared)


def test_rollback_plans_the_branch_that_holds_a_source_commit(pachd_client):
    repo = create_repo(pachd_client, "cb")
    target = _put(pachd_client, repo, "tmp", "/a")
    _point(pachd_client, repo, "master", target)
    now = _put(pachd_client, repo, "master", "/b")
    _delete(pachd_client, repo, "tmp")
    record = {"sources": [repo], "commits": {repo: target}}
    [move] = _plan_branches(pachd_client, PROJECT, record, "run-1")
    assert (move.repo, move.branch, move.from_commit, move.to_commit) == (repo, "master", now, target)
    _delete(pachd_client, repo, "master")
    with pytest.raises(LineageError, match=rf"run run-1: commit {PROJECT}/{repo}@{target} is on no branch"):
        _plan_branches(pachd_client, PROJECT, record, "run-1")
