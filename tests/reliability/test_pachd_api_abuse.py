"""API abuse against pachd-lite (issue 9): each bad request gets the right gRPC status, and the
server stays healthy (a follow-up call on the same server works).

Real ``pachd-lite serve`` subprocesses and the unmodified pachyderm_sdk client; oversized messages
go through a raw grpc channel because the SDK itself never sends them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps

from tests.fixtures.pachd import PachdProcess, unique_name
from tests.pachd_lite.sdk_helpers import PY, code_of, create_pipeline, create_repo, job, put, read

UNKNOWN_ID = "0123456789ab4def0123456789abcdef"
MIB = 1024 * 1024


def still_healthy(client) -> None:
    """A write and a read after the abuse: the server still answers correctly."""
    repo = create_repo(client, "alive")
    put(client, repo, {"/ok": b"ok"})
    assert read(client, f"{repo}@master:/ok") == b"ok"


@pytest.fixture(scope="module")
def file_root(tmp_path_factory) -> Path:
    """A folder the ``url_server`` may read file:// URLs from, with links pointing out of it."""
    base = tmp_path_factory.mktemp("url-roots")
    allowed = base / "allowed"
    (allowed / "dir").mkdir(parents=True)
    (allowed / "ok.txt").write_bytes(b"allowed")
    secret = base / "secret.txt"
    secret.write_bytes(b"host secret")
    (allowed / "link-out").symlink_to(secret)
    (allowed / "dir" / "inner.txt").write_bytes(b"inner")
    (allowed / "dir" / "sneaky").symlink_to(secret)
    return allowed


@pytest.fixture(scope="module")
def url_server(tmp_path_factory, file_root) -> PachdProcess:
    server = PachdProcess(
        tmp_path_factory.mktemp("pachd-url") / "root", extra_args=["--allow-file-urls", str(file_root)]
    ).start()
    yield server
    server.stop()


@pytest.fixture
def repo(pachd_client) -> str:
    name = create_repo(pachd_client, "abuse")
    put(pachd_client, name, {"/a.txt": b"a", "/dir/b.txt": b"b"})
    return name


def commit_of(repo: str, ref: str = "master") -> pfs.Commit:
    return pfs.Commit.from_uri(f"{repo}@{ref}")


# --- names -------------------------------------------------------------------------------------------
BAD_NAMES = ["has space", "semi;colon", "dot.dot", "slash/name", "uni\u00e9", "x" * 300 + "!"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_invalid_names_are_invalid_argument(pachd_client, repo, bad):
    default = pfs.Project(name="default")
    calls = [
        (pachd_client.pfs.create_repo, {"repo": pfs.Repo(name=bad, type="user", project=default)}),
        (pachd_client.pfs.create_project, {"project": pfs.Project(name=bad)}),
        (
            pachd_client.pfs.create_branch,
            {"branch": pfs.Branch(repo=pfs.Repo(name=repo, type="user", project=default), name=bad)},
        ),
        (
            pachd_client.pps.create_pipeline_v2,
            {
                "create_pipeline_request_json": json.dumps(
                    {
                        "pipeline": {"name": bad},
                        "input": {"pfs": {"repo": repo, "glob": "/"}},
                        "transform": {"cmd": ["true"]},
                    }
                )  # fmt: skip
            },
        ),
    ]
    for call, kwargs in calls:
        code, message = code_of(call, **kwargs)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (call, code, message)
        assert bad in message or repr(bad) in message, message
    # a pipeline reading a repo with a bad name is refused the same way
    code, message = code_of(
        pachd_client.pps.create_pipeline_v2,
        create_pipeline_request_json=json.dumps(
            {
                "pipeline": {"name": unique_name("p")},
                "input": {"pfs": {"repo": bad, "glob": "/"}},
                "transform": {"cmd": ["true"]},
            }
        ),  # fmt: skip
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and (bad in message or repr(bad) in message), message
    still_healthy(pachd_client)


# --- paths -------------------------------------------------------------------------------------------
ESCAPES = ["/../etc/passwd", "../outside", "/a/../../up", "/dir/..", "/nul\x00byte", "/new\nline"]


@pytest.mark.parametrize("bad", ESCAPES)
def test_path_escapes_are_invalid_argument(pachd_client, repo, bad):
    master = commit_of(repo)
    calls = [
        (pachd_client.pfs.put_file_from_bytes, {"commit": master, "path": bad, "data": b"x"}),
        (pachd_client.pfs.delete_file, {"commit": master, "path": bad}),
        (pachd_client.pfs.copy_file, {"commit": master, "src": pfs.File(commit=master, path=bad), "dst": "/c"}),
        (pachd_client.pfs.copy_file, {"commit": master, "src": pfs.File(commit=master, path="/a.txt"), "dst": bad}),
        (pachd_client.pfs.get_file, {"file": pfs.File(commit=master, path=bad)}),
        (pachd_client.pfs.get_file_tar, {"file": pfs.File(commit=master, path=bad)}),
        (pachd_client.pfs.inspect_file, {"file": pfs.File(commit=master, path=bad)}),
        (pachd_client.pfs.list_file, {"file": pfs.File(commit=master, path=bad)}),
    ]  # fmt: skip
    for call, kwargs in calls:
        code, message = code_of(call, **kwargs)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (call, bad, code, message)
        assert repr(bad) in message, message
    # nothing was written: the branch still holds exactly the two original files
    files = sorted(i.file.path for i in pachd_client.pfs.walk_file(file=pfs.File(commit=master, path="/")))
    assert files == ["/", "/a.txt", "/dir/", "/dir/b.txt"]
    still_healthy(pachd_client)


def test_absolute_paths_stay_inside_the_repo(pachd_client, repo):
    """A PFS path is always inside its repo: "/etc/passwd" names a repo file, never the host's."""
    master = commit_of(repo)
    host_before = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else None
    code, _ = code_of(pachd_client.pfs.get_file, file=pfs.File(commit=master, path="/etc/hostname"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = code_of(
        pachd_client.pfs.copy_file, commit=master, src=pfs.File(commit=master, path="/etc/hostname"), dst="/c"
    )
    assert code == grpc.StatusCode.NOT_FOUND
    pachd_client.pfs.put_file_from_bytes(commit=master, path="//etc//hostname", data=b"repo content")
    assert read(pachd_client, f"{repo}@master:/etc/hostname") == b"repo content"
    if host_before is not None:
        assert Path("/etc/hostname").read_bytes() == host_before
    still_healthy(pachd_client)


def test_file_urls_are_refused_unless_allowed(pachd_client, repo, file_root):
    """The default server reads no host files at all: not /etc/passwd, not its own database."""
    master = commit_of(repo)
    for url in ["file:///etc/passwd", (file_root / "ok.txt").as_uri(), "file:///proc/self/environ"]:
        code, message = code_of(pachd_client.pfs.put_file_from_url, commit=master, path="/u", url=url)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "--allow-file-urls" in message, (url, message)
    code, _ = code_of(pachd_client.pfs.put_file_from_url, commit=master, path="/u", url="ftp://x/y")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert not pachd_client.pfs.path_exists(pfs.File(commit=master, path="/u"))
    still_healthy(pachd_client)


def test_file_urls_stay_inside_allowed_folders(url_server, file_root):
    client = url_server.client()
    name = create_repo(client, "urls")
    master = commit_of(name)
    outside = file_root.parent / "secret.txt"
    refused = {
        "file:///etc/passwd": grpc.StatusCode.PERMISSION_DENIED,
        f"file://{file_root}/../secret.txt": grpc.StatusCode.PERMISSION_DENIED,  # `..` escape
        outside.as_uri(): grpc.StatusCode.PERMISSION_DENIED,
        (file_root / "link-out").as_uri(): grpc.StatusCode.PERMISSION_DENIED,  # symlink escape
        f"file://{file_root.relative_to('/')}/ok.txt": grpc.StatusCode.INVALID_ARGUMENT,  # host part
    }
    for url, expected in refused.items():
        code, message = code_of(client.pfs.put_file_from_url, commit=master, path="/u", url=url)
        assert code == expected, (url, code, message)
    # a recursive add of a folder holding a link out is refused as a whole, naming the link
    code, message = code_of(
        client.pfs.put_file_from_url,
        commit=master,
        path="/d",
        url=(file_root / "dir").as_uri(),
        recursive=True,
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED and "sneaky" in message
    assert not client.pfs.path_exists(pfs.File(commit=master, path="/u"))
    # inside the allowed folder it works
    client.pfs.put_file_from_url(commit=master, path="/ok", url=(file_root / "ok.txt").as_uri())
    assert read(client, f"{name}@master:/ok") == b"allowed"
    assert b"host secret" not in b"".join(
        read(client, f"{name}@master:{i.file.path}")
        for i in client.pfs.walk_file(file=pfs.File(commit=master, path="/"))
        if not i.file.path.endswith("/")
    )


# --- unknown commits --------------------------------------------------------------------------------
def test_unknown_commit_ids_are_not_found(pachd_client, repo):
    unknown = commit_of(repo, UNKNOWN_ID)
    calls = [
        (pachd_client.pfs.inspect_commit, {"commit": unknown}),
        (pachd_client.pfs.finish_commit, {"commit": unknown}),
        (pachd_client.pfs.get_file, {"file": pfs.File(commit=unknown, path="/a.txt")}),
        (pachd_client.pfs.list_file, {"file": pfs.File(commit=unknown, path="/")}),
        (pachd_client.pfs.glob_file, {"commit": unknown, "pattern": "/*"}),
        (pachd_client.pfs.put_file_from_bytes, {"commit": unknown, "path": "/x", "data": b"x"}),
        (pachd_client.pfs.list_commit, {"repo": pfs.Repo.from_uri(repo), "to": unknown}),
        (pachd_client.pfs.start_commit, {"branch": pfs.Branch.from_uri(f"{repo}@side"), "parent": unknown}),
        (pachd_client.pfs.inspect_commit_set, {"commit_set": pfs.CommitSet(id=UNKNOWN_ID)}),
        (pachd_client.pfs.inspect_commit, {"commit": commit_of(repo, "master^99")}),
        (pachd_client.pfs.inspect_commit, {"commit": commit_of(unique_name("norepo"), UNKNOWN_ID)}),
        (pachd_client.pps.inspect_job, {"job": pps.Job(pipeline=pps.Pipeline(name=unique_name("np")), id=UNKNOWN_ID)}),
    ]  # fmt: skip
    for call, kwargs in calls:
        code, message = code_of(call, **kwargs)
        assert code == grpc.StatusCode.NOT_FOUND, (call, code, message)
    assert not pachd_client.pfs.path_exists(pfs.File(commit=commit_of(repo), path="/x"))
    still_healthy(pachd_client)


# --- oversized messages ------------------------------------------------------------------------------
def test_oversized_messages_are_resource_exhausted(pachd_server, pachd_client, repo):
    """21 MiB is over the 20 MiB limit, unary or inside a ModifyFile stream; 19 MiB still works."""
    target = f"{pachd_server.connect_host}:{pachd_server.port}"
    big = 21 * MIB
    with grpc.insecure_channel(target) as channel:
        create_repo_rpc = channel.unary_unary("/pfs_v2.API/CreateRepo", request_serializer=bytes)
        request = pfs.CreateRepoRequest(
            repo=pfs.Repo(name=unique_name("big"), type="user", project=pfs.Project(name="default")),
            description="d" * big,
        )
        with pytest.raises(grpc.RpcError) as err:
            create_repo_rpc(request, timeout=60)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        modify = channel.stream_unary("/pfs_v2.API/ModifyFile", request_serializer=bytes)
        messages = [
            pfs.ModifyFileRequest(set_commit=commit_of(repo)),
            pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/huge", raw=b"h" * big)),
        ]
        with pytest.raises(grpc.RpcError) as err:
            modify(iter(messages), timeout=60)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not pachd_client.pfs.repo_exists(request.repo)
    assert not pachd_client.pfs.path_exists(pfs.File(commit=commit_of(repo), path="/huge"))
    # the SDK's own 19 MiB chunks are fine
    data = os.urandom(19 * MIB + 5)
    pachd_client.pfs.put_file_from_bytes(commit=commit_of(repo), path="/big", data=data)
    assert read(pachd_client, f"{repo}@master:/big") == data
    still_healthy(pachd_client)


# --- concurrent writers ------------------------------------------------------------------------------
WRITERS = 6
FILES_EACH = 3


def _commit_with_retries(client, repo: str, writer: int, outcomes: list) -> None:
    """One writer: its files in one commit; StartCommit refused while another is open -> retry."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with client.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@master")) as c:
                for k in range(FILES_EACH):
                    c.put_file_from_bytes(f"/w{writer}/f{k}", f"{writer}-{k}".encode())
            outcomes.append((writer, c.id))
            return
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                outcomes.append((writer, exc))
                return
            time.sleep(0.02)
    outcomes.append((writer, TimeoutError("no turn in 120 s")))


def _one_off_writes(client, repo: str, writer: int, outcomes: list) -> None:
    """One writer doing one-off writes (no explicit commit): each call is one whole commit."""
    try:
        for k in range(FILES_EACH):
            client.pfs.put_file_from_bytes(
                commit=commit_of(repo), path=f"/o{writer}/f{k}", data=f"{writer}-{k}".encode()
            )
        outcomes.append((writer, "ok"))
    except grpc.RpcError as exc:
        outcomes.append((writer, exc))


def _run_writers(writer, server, repo: str) -> list:
    """Run WRITERS threads of ``writer``, each with its own client; their (writer, outcome) pairs."""
    outcomes: list = []
    threads = [
        threading.Thread(target=writer, args=(server.client(), repo, w, outcomes)) for w in range(WRITERS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    return outcomes


def _history(client, repo: str) -> list[pfs.CommitInfo]:
    return list(reversed(list(client.pfs.list_commit(repo=pfs.Repo.from_uri(repo)))))


def _check_linear(client, repo: str, commits: list[pfs.CommitInfo]) -> list[set[str]]:
    """Each commit's parent is the previous one; returns the set of paths each commit added."""
    added, previous = [], set()
    for i, info in enumerate(commits):
        assert info.finished and info.finished.timestamp() > 0
        if i:
            assert info.parent_commit.id == commits[i - 1].commit.id
        paths = {
            f.file.path
            for f in client.pfs.walk_file(file=pfs.File(commit=info.commit, path="/"))
            if not f.file.path.endswith("/")
        }
        assert previous <= paths, "a later commit lost files of an earlier one"
        added.append(paths - previous)
        previous = paths
    return added


def test_concurrent_writers_to_one_branch(pachd_client, pachd_server):
    repo = create_repo(pachd_client, "race")
    outcomes = _run_writers(_commit_with_retries, pachd_server, repo)
    assert all(isinstance(o[1], str) for o in outcomes) and len(outcomes) == WRITERS, outcomes
    history = _history(pachd_client, repo)
    assert {c.commit.id for c in history} == {o[1] for o in outcomes}
    for added in _check_linear(pachd_client, repo, history):
        writers = {p.split("/")[1] for p in added}
        assert len(writers) == 1 and len(added) == FILES_EACH, added  # one writer's whole commit
    for w in range(WRITERS):
        assert read(pachd_client, f"{repo}@master:/w{w}/f2") == f"{w}-2".encode()
    still_healthy(pachd_client)


def test_concurrent_one_off_writes_to_one_branch(pachd_client, pachd_server):
    repo = create_repo(pachd_client, "oneoff")
    outcomes = _run_writers(_one_off_writes, pachd_server, repo)
    assert sorted(outcomes) == [(w, "ok") for w in range(WRITERS)], outcomes
    history = _history(pachd_client, repo)
    added = _check_linear(pachd_client, repo, history)
    assert len(history) == WRITERS * FILES_EACH
    assert all(len(a) == 1 for a in added), added  # every call is its own commit, none merged
    still_healthy(pachd_client)


# --- deleting what a pipeline reads ------------------------------------------------------------------
def test_deleting_a_repo_a_pipeline_reads_is_refused(pachd_client):
    data = create_repo(pachd_client, "input")
    name = unique_name("reader")
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, ["sh", "-c", "cp -r /pfs/*/* /pfs/out/"]
    )
    code, message = code_of(pachd_client.pfs.delete_repo, repo=pfs.Repo.from_uri(data))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and f"pipeline default/{name}" in message, message
    code, message = code_of(pachd_client.pfs.delete_repo, repo=pfs.Repo.from_uri(name))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "delete the pipeline instead" in message
    # both repos and the pipeline still work
    commit = put(pachd_client, data, {"/x": b"x"})
    assert job(pachd_client, name, commit.id).state == pps.JobState.JOB_SUCCESS
    assert read(pachd_client, f"{name}@master:/x") == b"x"
    still_healthy(pachd_client)


# --- pipeline outputs pointing out of the sandbox ----------------------------------------------------
ESCAPING_OUTPUTS = """
import os, sys
os.symlink(sys.argv[1], '/pfs/out/sym')
os.link(sys.argv[2], '/pfs/out/hard')
"""


def test_outputs_linked_to_host_files_are_copied(pachd_client, tmp_path):
    """User code that symlinks or hard-links host files into /pfs/out gets their content stored,
    not their inode: changing the host files later cannot change a finished commit."""
    sym_target, hard_target = tmp_path / "sym-target", tmp_path / "hard-target"
    sym_target.write_bytes(b"sym original")
    hard_target.write_bytes(b"hard original")
    data = create_repo(pachd_client, "in")
    name = unique_name("linker")
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/"}},
        [PY, "-c", ESCAPING_OUTPUTS, str(sym_target), str(hard_target)],
    )  # fmt: skip
    commit = put(pachd_client, data, {"/x": b"x"})
    info = job(pachd_client, name, commit.id)
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    for target in (sym_target, hard_target):
        os.chmod(target, 0o644)
        with open(target, "r+b") as fh:  # in place: same inode
            fh.write(b"CHANGED!")
    assert read(pachd_client, f"{name}@{commit.id}:/sym") == b"sym original"
    assert read(pachd_client, f"{name}@{commit.id}:/hard") == b"hard original"
    still_healthy(pachd_client)
