"""Durability: kill -9 the server during an upload and right after FinishCommit, then restart."""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest
from pachyderm_sdk.api import pfs

from tests.pachd_lite import is_set

CHUNK = 19 * 1024 * 1024


def blake(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


class KillingReader:
    """A file object that kills the server after handing out ``kill_after`` chunks."""

    def __init__(self, server, total_chunks: int, kill_after: int) -> None:
        self.server = server
        self.total = total_chunks
        self.kill_after = kill_after
        self.served = 0

    def read(self, size: int = -1) -> bytes:
        if self.served == self.kill_after:
            self.server.kill()
        if self.served >= self.total:
            return b""
        self.served += 1
        return os.urandom(min(size, CHUNK) if size > 0 else CHUNK)


def read_all(client, commit: pfs.Commit, path: str) -> bytes:
    return client.pfs.pfs_file(pfs.File(commit=commit, path=path)).read()


def test_kill_during_upload_and_after_finish(pachd_factory):
    server = pachd_factory()
    client = server.client()
    repo = pfs.Repo(name="crash", type="user", project=pfs.Project(name="default"))
    client.pfs.create_repo(repo=repo)
    branch = pfs.Branch(repo=repo, name="master")

    # 1. a finished commit with a multi-chunk file
    big = os.urandom(2 * CHUNK + 12345)
    with client.pfs.commit(branch=branch) as done:
        done.put_file_from_bytes("/big.bin", big)
        done.put_file_from_bytes("/small.txt", b"small")

    # 2. kill -9 in the middle of a large upload into a new commit
    open_commit = client.pfs.start_commit(branch=branch)
    with pytest.raises((grpc.RpcError, ConnectionError)):
        client.pfs.put_file_from_file(
            commit=open_commit, path="/partial.bin", file=KillingReader(server, total_chunks=6, kill_after=2)
        )
    server.restart()
    client = server.client()

    finished = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo.as_uri()}@{done.id}"))
    assert is_set(finished.finished)
    assert blake(read_all(client, finished.commit, "/big.bin")) == blake(big)
    assert read_all(client, finished.commit, "/small.txt") == b"small"
    try:
        survivor = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo.as_uri()}@{open_commit.id}"))
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND  # gone is acceptable
    else:
        assert not is_set(survivor.finished) and not is_set(survivor.finishing), (
            "unfinished commit shown as finished"
        )
        paths = [f.file.path for f in client.pfs.list_file(file=pfs.File(commit=survivor.commit, path="/"))]
        assert "/partial.bin" not in paths  # a half-received file never becomes visible
        client.pfs.finish_commit(commit=survivor.commit)  # still open: it can be finished after restart

    # 3. kill -9 right after FinishCommit returned
    payload = os.urandom(CHUNK + 777)
    with client.pfs.commit(branch=branch) as last:
        last.put_file_from_bytes("/last.bin", payload)
    server.kill()
    server.restart()
    client = server.client()
    info = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo.as_uri()}@master"))
    assert info.commit.id == last.id and is_set(info.finished)
    assert blake(read_all(client, info.commit, "/last.bin")) == blake(payload)
    assert blake(read_all(client, info.commit, "/big.bin")) == blake(big)


def test_unreferenced_blobs_are_collected_at_start(pachd_factory):
    server = pachd_factory()
    client = server.client()
    keep, drop = pfs.Repo.from_uri("keep"), pfs.Repo.from_uri("drop")
    for repo, data in ((keep, b"kept content"), (drop, b"dropped content")):
        client.pfs.create_repo(repo=repo)
        with client.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as c:
            c.put_file_from_bytes("/f", data)
    client.pfs.delete_repo(repo=drop)
    server.restart()
    blobs = {p.name for p in (server.root / "blobs").glob("*/*")}
    assert blake(b"kept content") in blobs and blake(b"dropped content") not in blobs
    assert read_all(server.client(), pfs.Commit.from_uri("keep@master"), "/f") == b"kept content"
