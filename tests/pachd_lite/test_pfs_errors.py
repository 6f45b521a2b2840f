"""Error codes and messages, as the SDK's ``*_exists`` helpers and users rely on them."""

from __future__ import annotations

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps

from tests.fixtures.pachd import unique_name
from tests.pachd_lite.sdk_helpers import code_of


@pytest.fixture
def repo(pachd_client) -> pfs.Repo:
    repo = pfs.Repo(name=unique_name("err"), type="user", project=pfs.Project(name="default"))
    pachd_client.pfs.create_repo(repo=repo)
    with pachd_client.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as c:
        c.put_file_from_bytes("/a.txt", b"a")
        c.put_file_from_bytes("/dir/b.txt", b"b")
    return repo


def test_not_found_for_each_resource(pachd_client, repo):
    missing_project = pfs.Project(name=unique_name("nope"))
    code, msg = code_of(pachd_client.pfs.inspect_project, project=missing_project)
    assert code == grpc.StatusCode.NOT_FOUND and missing_project.name in msg
    missing_repo = pfs.Repo(name=unique_name("nope"), type="user", project=pfs.Project(name="default"))
    code, msg = code_of(pachd_client.pfs.inspect_repo, repo=missing_repo)
    assert code == grpc.StatusCode.NOT_FOUND and missing_repo.name in msg
    code, msg = code_of(pachd_client.pfs.inspect_branch, branch=pfs.Branch(repo=repo, name="nobranch"))
    assert code == grpc.StatusCode.NOT_FOUND and "nobranch" in msg
    bad_id = "0123456789ab4def0123456789abcdef"
    code, msg = code_of(
        pachd_client.pfs.inspect_commit, commit=pfs.Commit.from_uri(f"{repo.as_uri()}@{bad_id}")
    )
    assert code == grpc.StatusCode.NOT_FOUND and bad_id in msg
    code, msg = code_of(pachd_client.pfs.inspect_file, file=pfs.File.from_uri(f"{repo.as_uri()}@master:/zzz"))
    assert code == grpc.StatusCode.NOT_FOUND and "/zzz" in msg
    code, _ = code_of(pachd_client.pfs.inspect_commit_set, commit_set=pfs.CommitSet(id=bad_id))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = code_of(
        pachd_client.pfs.inspect_commit, commit=pfs.Commit.from_uri(f"{repo.as_uri()}@master^5")
    )
    assert code == grpc.StatusCode.NOT_FOUND
    # the SDK helpers turn NOT_FOUND into False
    assert not pachd_client.pfs.project_exists(missing_project)
    assert not pachd_client.pfs.repo_exists(missing_repo)
    assert not pachd_client.pfs.branch_exists(pfs.Branch(repo=repo, name="nobranch"))
    assert not pachd_client.pfs.commit_exists(pfs.Commit.from_uri(f"{repo.as_uri()}@{bad_id}"))
    assert not pachd_client.pfs.path_exists(pfs.File.from_uri(f"{repo.as_uri()}@master:/zzz"))
    assert pachd_client.pfs.path_exists(pfs.File.from_uri(f"{repo.as_uri()}@master:/dir"))


def test_already_exists(pachd_client, repo):
    code, msg = code_of(pachd_client.pfs.create_repo, repo=repo)
    assert code == grpc.StatusCode.ALREADY_EXISTS and repo.name in msg
    code, _ = code_of(pachd_client.pfs.create_project, project=pfs.Project(name="default"))
    assert code == grpc.StatusCode.ALREADY_EXISTS


def test_invalid_arguments(pachd_client, repo):
    code, msg = code_of(
        pachd_client.pfs.create_repo, repo=pfs.Repo(name="bad name!", project=pfs.Project(name="default"))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "bad name!" in msg
    code, _ = code_of(pachd_client.pfs.create_project, project=pfs.Project(name="-starts-with-dash"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(pachd_client.pfs.create_project, project=pfs.Project(name="x" * 60))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, msg = code_of(
        pachd_client.pfs.inspect_file, file=pfs.File.from_uri(f"{repo.as_uri()}@master:/../etc")
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and ".." in msg
    with pachd_client.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as c:
        code, msg = code_of(c.put_file_from_bytes, "/a/../../escape", b"x")
        assert code == grpc.StatusCode.INVALID_ARGUMENT and ".." in msg
    code, _ = code_of(pachd_client.pfs.create_branch, branch=pfs.Branch(repo=repo, name="bad branch"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # GetFile needs exactly one regular file
    code, msg = code_of(pachd_client.pfs.get_file, file=pfs.File.from_uri(f"{repo.as_uri()}@master:/dir"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "directory" in msg
    code, msg = code_of(pachd_client.pfs.get_file, file=pfs.File.from_uri(f"{repo.as_uri()}@master:/**.txt"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "2 files" in msg


def test_failed_preconditions(pachd_client, repo):
    head = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo.as_uri()}@master"))
    # writing to an explicitly named finished commit
    code, msg = code_of(pachd_client.pfs.put_file_from_bytes, commit=head.commit, path="/x", data=b"x")
    assert code == grpc.StatusCode.FAILED_PRECONDITION and head.commit.id in msg and "finished" in msg
    code, msg = code_of(pachd_client.pfs.finish_commit, commit=head.commit)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "finished" in msg
    # a new commit while the branch head is open
    open_commit = pachd_client.pfs.start_commit(branch=pfs.Branch(repo=repo, name="master"))
    code, msg = code_of(pachd_client.pfs.start_commit, branch=pfs.Branch(repo=repo, name="master"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "parent commit" in msg and open_commit.id in msg
    pachd_client.pfs.finish_commit(commit=open_commit)
    # a repo in another branch's provenance cannot be deleted without force
    down = pfs.Repo(name=unique_name("down"), type="user", project=pfs.Project(name="default"))
    pachd_client.pfs.create_repo(repo=down)
    pachd_client.pfs.create_branch(
        branch=pfs.Branch(repo=down, name="master"), provenance=[pfs.Branch(repo=repo, name="master")]
    )
    code, msg = code_of(pachd_client.pfs.delete_repo, repo=repo)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and down.name in msg


def test_unsupported_methods_say_so(pachd_client):
    code, msg = code_of(pachd_client.pps.run_pipeline, pipeline=pps.Pipeline(name="x"))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    code, msg = code_of(pachd_client.auth.activate)
    assert code == grpc.StatusCode.UNIMPLEMENTED and "pachd-lite does not support" in msg
