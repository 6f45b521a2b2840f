"""Attacks on pachd-lite's file system and RPC layer (issue 18): hostile globs, absurdly deep paths,
idle streams holding every thread, undecodable requests. Each test starts a real pachd-lite, attacks
it and checks the answer and that the server still answers health checks and ordinary calls quickly.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pachyderm_sdk.api import pfs, pps

from pachd_lite.api.limits import WAIT_SLOTS
from pachd_lite.pfs.names import MAX_PATH_BYTES, MAX_PATH_DEPTH
from tests.fixtures.pachd import PachdProcess
from tests.pachd_lite.sdk_helpers import PY, code_of, create_pipeline, create_repo, put, read

EVIL_GLOB = "/*a*a*a*a*a*a*b"  # a backtracking matcher needs ~n^6 steps on a long name without "b"
FAST = 1.0  # seconds a health check or an ordinary call may take while the server is under attack


def health_seconds(server: PachdProcess) -> float:
    """How long a health check takes (fails the test if it does not answer SERVING in 5 s)."""
    start = time.monotonic()
    with grpc.insecure_channel(f"{server.connect_host}:{server.port}") as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    return time.monotonic() - start


def list_repo_seconds(client) -> float:
    start = time.monotonic()
    list(client.pfs.list_repo())
    return time.monotonic() - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime, stime in clock ticks (USER_HZ)


def glob(client, repo: str, pattern: str) -> list[str]:
    return [
        i.file.path
        for i in client.pfs.glob_file(commit=pfs.Commit.from_uri(f"{repo}@master"), pattern=pattern)
    ]


# --- 2: one glob must not freeze the server ---------------------------------------------------------
def test_backtracking_glob_answers_at_once_and_health_stays_fast(pachd_factory):
    server = pachd_factory()
    client = server.client()
    repo = create_repo(client, "glob")
    put(client, repo, {"/" + "a" * 150: b"x", "/aaaaaab": b"y"})
    start = time.monotonic()
    assert glob(client, repo, EVIL_GLOB) == ["/aaaaaab"]
    assert time.monotonic() - start < FAST
    assert health_seconds(server) < FAST


def test_deadline_stops_the_servers_work(pachd_factory):
    """A glob that really is expensive (many long names; linear but slow) stops when the client's
    deadline passes: the server does not burn CPU for a caller that has gone."""
    server = pachd_factory()
    client = server.client()
    repo = create_repo(client, "deadline")
    rnd = random.Random(7)
    put(client, repo, {"/" + "".join(rnd.choice("ab") for _ in range(4000)): b"x" for _ in range(20)})
    costly = "/*a" + "?" * 300  # the DFA needs a new state for almost every character
    with grpc.insecure_channel(f"{server.connect_host}:{server.port}") as channel:
        call = channel.unary_stream(
            "/pfs_v2.API/GlobFile", request_serializer=bytes, response_deserializer=pfs.FileInfo.FromString
        )
        req = pfs.GlobFileRequest(commit=pfs.Commit.from_uri(f"{repo}@master"), pattern=costly)
        with pytest.raises(grpc.RpcError) as err:
            list(call(req, timeout=0.5))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(0.3)  # the server notices within its check interval
    before = cpu_seconds(server.pid)
    time.sleep(1.5)
    # an idle server uses ~0.01 s here; one still matching uses whatever share of a core it gets
    assert cpu_seconds(server.pid) - before < 0.2, "the server kept working after the deadline"
    assert health_seconds(server) < FAST


def test_pipeline_with_a_backtracking_glob_neither_freezes_nor_blocks_restart(pachd_factory):
    server = pachd_factory()
    client = server.client()
    repo = create_repo(client, "globin")
    put(client, repo, {"/" + "a" * 150: b"x"})
    name = f"{repo}-p"
    create_pipeline(client, name, {"pfs": {"repo": repo, "glob": EVIL_GLOB}}, [PY, "-c", "pass"])
    assert health_seconds(server) < FAST
    info = client.pps.inspect_job(
        job=pps.Job(pipeline=pps.Pipeline(name=name), id=_first_job(client, name)), wait=True
    )
    assert info.state == pps.JobState.JOB_SUCCESS and info.data_total == 0
    # restart with a job still to run: the server comes up and answers at once
    put(client, repo, {"/" + "a" * 149 + "c": b"y"})
    server.restart()
    assert health_seconds(server) < FAST
    assert list_repo_seconds(server.client()) < FAST


def _first_job(client, pipeline: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        jobs = list(client.pps.list_job(pipeline=pps.Pipeline(name=pipeline)))
        if jobs:
            return jobs[-1].job.id
        time.sleep(0.1)
    raise AssertionError(f"no job for pipeline {pipeline}")


# --- 5: paths too deep or too long are refused; deep trees never overflow the stack ------------------
def test_too_deep_or_too_long_paths_are_refused_naming_the_path(pachd_client):
    repo = create_repo(pachd_client, "deep")
    put(pachd_client, repo, {"/ok": b"ok"})
    deep = "/d" * 1000
    too_long = "/" + "n" * (MAX_PATH_BYTES + 1)
    for path, why in ((deep, "1000 levels deep"), (too_long, f"{MAX_PATH_BYTES + 2} bytes")):
        code, msg = code_of(put, pachd_client, repo, {path: b"x"})
        assert code == grpc.StatusCode.INVALID_ARGUMENT, msg
        assert why in msg and path[:40] in msg, msg
    at_limit = "/d" * (MAX_PATH_DEPTH - 1) + "/f"
    put(pachd_client, repo, {at_limit: b"deepest"})
    commit = pfs.Commit.from_uri(f"{repo}@master")
    assert {i.file.path for i in pachd_client.pfs.list_file(file=pfs.File(commit=commit, path="/"))} == {
        "/ok",
        "/d/",
    }
    walked = [i.file.path for i in pachd_client.pfs.walk_file(file=pfs.File(commit=commit, path="/"))]
    assert at_limit in walked and len(walked) == MAX_PATH_DEPTH + 2  # root, /ok, 255 dirs, the file
    assert glob(pachd_client, repo, "/**f") == [at_limit]
    info = pachd_client.pfs.inspect_file(file=pfs.File(commit=commit, path=at_limit))
    assert info.size_bytes == len(b"deepest")
    name = f"{repo}-count"  # a job over the deepest tree allowed places every file in its datum
    create_pipeline(
        pachd_client,
        name,
        {"pfs": {"repo": repo, "glob": "/"}},
        ["sh", "-c", f"find /pfs/{repo} -type f | wc -l > /pfs/out/n"],
    )
    job = pachd_client.pps.inspect_job(
        job=pps.Job(pipeline=pps.Pipeline(name=name), id=_first_job(pachd_client, name)), wait=True
    )
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    assert read(pachd_client, f"{name}@master:/n").strip() == b"2"


def test_a_root_holding_a_very_deep_path_stays_usable(pachd_factory):
    """A root written before the limit existed (a 1200-level path): every read and a job work."""
    server = pachd_factory()
    client = server.client()
    repo = create_repo(client, "legacy")
    put(client, repo, {"/x": b"deep content"})
    server.stop()
    deep = "/d" * 1200 + "/f"
    with sqlite3.connect(server.root / "pachd.sqlite") as db:
        assert db.execute("UPDATE files SET path = ? WHERE path = '/x'", (deep,)).rowcount >= 1
    server.start()
    commit = pfs.Commit.from_uri(f"{repo}@master")
    assert [i.file.path for i in client.pfs.list_file(file=pfs.File(commit=commit, path="/"))] == ["/d/"]
    walked = [i.file.path for i in client.pfs.walk_file(file=pfs.File(commit=commit, path="/"))]
    assert walked[-1] == deep and len(walked) == 1202
    assert glob(client, repo, "/**f") == [deep]
    assert client.pfs.inspect_file(file=pfs.File(commit=commit, path="/d")).file.path == "/d/"


# --- 6: idle streams and waits must not starve the server ---------------------------------------------
def _raw(channel: grpc.Channel, path: str, response: type, streaming: bool = False):
    factory = channel.unary_stream if streaming else channel.unary_unary
    return factory(path, request_serializer=bytes, response_deserializer=response.FromString)


def test_a_hundred_waits_and_subscriptions_leave_the_server_responsive(pachd_factory):
    server = pachd_factory()
    client = server.client()
    repo = create_repo(client, "waits")
    commit = client.pfs.start_commit(branch=pfs.Branch.from_uri(f"{repo}@master"))
    with grpc.insecure_channel(f"{server.connect_host}:{server.port}") as channel:
        subscribe = _raw(channel, "/pfs_v2.API/SubscribeCommit", pfs.CommitInfo, streaming=True)
        inspect = _raw(channel, "/pfs_v2.API/InspectCommit", pfs.CommitInfo)
        streams = [
            subscribe(
                pfs.SubscribeCommitRequest(repo=pfs.Repo.from_uri(repo), state=pfs.CommitState.FINISHED)
            )
            for _ in range(50)
        ]
        waits = [
            inspect.future(pfs.InspectCommitRequest(commit=commit, wait=pfs.CommitState.FINISHED))
            for _ in range(50)
        ]
        time.sleep(1.0)  # every call is now parked in the server
        assert not any(w.done() for w in waits)
        for _ in range(5):
            assert health_seconds(server) < FAST
            assert list_repo_seconds(client) < FAST
        client.pfs.finish_commit(commit=commit)
        assert all(w.result(timeout=10).finished for w in waits)
        firsts = [next(s) for s in streams]
        assert {f.commit.id for f in firsts} == {commit.id}
        for s in streams:
            s.cancel()


def test_waits_over_the_limit_are_refused_at_once(pachd_factory):
    server = pachd_factory()
    client = server.client()
    repo = create_repo(client, "limit")
    commit = client.pfs.start_commit(branch=pfs.Branch.from_uri(f"{repo}@master"))
    req = pfs.InspectCommitRequest(commit=commit, wait=pfs.CommitState.FINISHED)
    with grpc.insecure_channel(f"{server.connect_host}:{server.port}") as channel:
        inspect = _raw(channel, "/pfs_v2.API/InspectCommit", pfs.CommitInfo)
        waits = [inspect.future(req) for _ in range(WAIT_SLOTS)]
        time.sleep(1.5)
        assert not any(w.done() for w in waits)
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            inspect(req, timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"{WAIT_SLOTS} concurrent subscriptions and waits" in err.value.details()
        assert time.monotonic() - start < FAST
        assert health_seconds(server) < FAST
        assert list_repo_seconds(client) < FAST
        client.pfs.finish_commit(commit=commit)
        assert all(w.result(timeout=20).finished for w in waits)


# --- undecodable requests -------------------------------------------------------------------------------
def test_non_utf8_paths_are_invalid_argument(pachd_client, pachd_server):
    repo = create_repo(pachd_client, "utf8")
    put(pachd_client, repo, {"/ok": b"ok"})
    placeholder, bad = b"/PLACEHOLDER", b"/bad-\xff\xfe-wxyz"
    assert len(placeholder) == len(bad)
    commit = pfs.Commit.from_uri(f"{repo}@master")
    inspect = bytes(pfs.InspectFileRequest(file=pfs.File(commit=commit, path=placeholder.decode())))
    modify = [
        bytes(pfs.ModifyFileRequest(set_commit=commit)),
        bytes(pfs.ModifyFileRequest(add_file=pfs.AddFile(path=placeholder.decode(), raw=b"data"))),
    ]
    with grpc.insecure_channel(f"{pachd_server.connect_host}:{pachd_server.port}") as channel:
        ident = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
        for call, payload in (
            (channel.unary_unary("/pfs_v2.API/InspectFile", **ident), inspect.replace(placeholder, bad)),
            (
                channel.stream_unary("/pfs_v2.API/ModifyFile", **ident),
                iter([modify[0], modify[1].replace(placeholder, bad)]),
            ),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call(payload, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not valid UTF-8" in err.value.details() and "bad-" in err.value.details()
    assert [i.file.path for i in pachd_client.pfs.list_file(file=pfs.File(commit=commit, path="/"))] == [
        "/ok"
    ]


def test_one_hundred_concurrent_one_off_writes_do_not_starve_health(pachd_factory):
    """Ordinary calls in bulk still leave a thread for health checks."""
    server = pachd_factory()
    client = server.client()
    repo = create_repo(client, "bulk")
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            server.client().pfs.put_file_from_bytes(
                commit=pfs.Commit.from_uri(f"{repo}@master"), path=f"/f{i}", data=json.dumps(i).encode()
            )
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    assert health_seconds(server) < FAST
    for t in threads:
        t.join(120)
    assert not errors
    commit = pfs.Commit.from_uri(f"{repo}@master")
    assert len(list(client.pfs.list_file(file=pfs.File(commit=commit, path="/")))) == 100
