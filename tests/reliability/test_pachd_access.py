"""Access to pachd-lite (issue 9, "Access"): the bind rule, the auth token, and no token leaks.

Real servers (``pachd-lite serve`` subprocesses) and the unmodified pachyderm_sdk client.
"""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs, pps

from pachd_lite.auth import is_loopback
from tests.fixtures.pachd import ROOT, free_port, unique_name
from tests.pachd_lite.sdk_helpers import PY, code_of, create_pipeline, create_repo, job, put, read

TOKEN = "tok-" + "9f8e7d6c5b4a" * 3


def serve_cli(tmp_path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``pachd-lite serve`` expecting it to refuse to start (bounded wait)."""
    full_env = {k: v for k, v in os.environ.items() if k != "PACHD_LITE_AUTH_TOKEN"}
    full_env.update(env or {})
    cmd = [sys.executable, "-m", "pachd_lite.cli", "serve", "--root", str(tmp_path / "root"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT, env=full_env)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("::", False), ("", False), ("8.8.8.8", False)],
)  # fmt: skip
def test_loopback_detection(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_non_loopback_bind_is_refused_without_a_token(tmp_path, host):
    done = serve_cli(tmp_path, "--host", host, "--port", str(free_port()))
    assert done.returncode == 2, done.stderr
    assert "refusing to listen" in done.stderr and "PACHD_LITE_AUTH_TOKEN" in done.stderr
    assert "--auth-token-file" in done.stderr


def test_empty_or_missing_token_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    done = serve_cli(
        tmp_path, "--host", "0.0.0.0", "--port", str(free_port()), "--auth-token-file", str(empty)
    )
    assert done.returncode == 2 and f"the auth token file {empty} is empty" in done.stderr
    missing = tmp_path / "nope.token"
    done = serve_cli(tmp_path, "--auth-token-file", str(missing))
    assert done.returncode == 2 and str(missing) in done.stderr


def test_there_is_no_token_flag(tmp_path):
    """A token on the command line would show in `ps`: the CLI has no way to take one."""
    done = serve_cli(tmp_path, "--auth-token", TOKEN)
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


@pytest.fixture
def secured(pachd_factory):
    """A server on every interface with a token (from a file), reached through 127.0.0.1."""
    return pachd_factory(host="0.0.0.0", auth_token=TOKEN, env={"PACHD_LITE_LOG_LEVEL": "DEBUG"})


def test_token_required_on_every_rpc_but_health(secured, monkeypatch):
    monkeypatch.delenv("PACH_PYTHON_AUTH_TOKEN", raising=False)
    anonymous = Client(host="127.0.0.1", port=secured.port)
    wrong = Client(host="127.0.0.1", port=secured.port, auth_token=TOKEN[:-1] + "X")
    repo = pfs.Repo.from_uri(unique_name("auth"))
    master = pfs.Commit.from_uri(f"{repo.name}@master")
    for client in (anonymous, wrong):
        for call, kwargs in [
            (client.pfs.list_repo, {}),  # server-streaming
            (client.pfs.create_repo, {"repo": repo}),  # unary
            (client.get_version, {}),
            (client.pps.list_pipeline, {}),
        ]:
            code, message = code_of(call, **kwargs)
            assert code == grpc.StatusCode.UNAUTHENTICATED, (call, code, message)
            assert TOKEN not in message and "authn-token" in message
        # client-streaming (ModifyFile) is refused too, before it can write anything
        code, _ = code_of(client.pfs.put_file_from_bytes, commit=master, path="/x", data=b"x")
        assert code == grpc.StatusCode.UNAUTHENTICATED
    # health stays open, so orchestrators can probe it
    with grpc.insecure_channel(f"127.0.0.1:{secured.port}") as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    # the right token works, and nothing the refused calls tried was done
    client = secured.client()
    # error messages that echo user input do not echo the token either
    code, message = code_of(
        client.pfs.create_repo,
        repo=pfs.Repo(name=TOKEN + "!", type="user", project=pfs.Project(name="default")),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "[redacted]!" in message and TOKEN not in message
    assert not client.pfs.repo_exists(repo)
    client.pfs.create_repo(repo=repo)
    client.pfs.put_file_from_bytes(commit=master, path="/x", data=b"ok")
    assert client.pfs.pfs_file(pfs.File.from_uri(f"{repo.name}@master:/x")).read() == b"ok"


def test_sdk_token_from_environment(secured, monkeypatch):
    monkeypatch.setenv("PACH_PYTHON_AUTH_TOKEN", TOKEN)
    assert Client(host="127.0.0.1", port=secured.port).get_version().major == 2
    monkeypatch.setenv("PACH_PYTHON_AUTH_TOKEN", "not-it")
    code, _ = code_of(Client(host="127.0.0.1", port=secured.port).get_version)
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_token_from_server_environment(pachd_factory, monkeypatch):
    monkeypatch.delenv("PACH_PYTHON_AUTH_TOKEN", raising=False)
    server = pachd_factory(host="0.0.0.0", env={"PACHD_LITE_AUTH_TOKEN": TOKEN})
    code, _ = code_of(Client(host="127.0.0.1", port=server.port).pfs.list_repo)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert list(Client(host="127.0.0.1", port=server.port, auth_token=TOKEN).pfs.list_repo()) == []


LEAKY_CODE = """
import os, sys
from pachyderm_sdk import Client
names = sorted(r.repo.name for r in Client.new_in_cluster().pfs.list_repo())
open('/pfs/out/repos.txt', 'w').write('\\n'.join(names))
print('careless user code prints its token:', os.environ['PACH_TOKEN'])
if os.environ.get('FAIL'):
    sys.exit('failing with ' + os.environ['PACH_PYTHON_AUTH_TOKEN'])
"""


def test_pipeline_user_code_uses_the_token_and_it_never_leaks(secured):
    client = secured.client()
    data = create_repo(client, "data")
    good, bad = unique_name("incluster"), unique_name("leaky")
    create_pipeline(client, good, {"pfs": {"repo": data, "glob": "/"}}, [PY, "-c", LEAKY_CODE])
    create_pipeline(
        client, bad, {"pfs": {"repo": data, "glob": "/"}}, [PY, "-c", LEAKY_CODE],
        transform={"cmd": [PY, "-c", LEAKY_CODE], "env": {"FAIL": "1"}}, datum_tries=1,
    )  # fmt: skip
    commit = put(client, data, {"/a": b"a"})
    ok = job(client, good, commit.id)
    assert ok.state == pps.JobState.JOB_SUCCESS, ok.reason
    assert data in read(client, f"{good}@master:/repos.txt").decode().split("\n")
    failed = job(client, bad, commit.id)
    assert failed.state == pps.JobState.JOB_FAILURE
    assert "failing with [redacted]" in failed.reason and TOKEN not in failed.reason
    out_commit = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{bad}@{commit.id}"))
    assert out_commit.error and TOKEN not in out_commit.error

    logs = [m.message for name in (good, bad) for m in client.pps.get_logs(pipeline=pps.Pipeline(name=name))]
    assert any("prints its token: [redacted]" in line for line in logs), logs
    assert not any(TOKEN in line for line in logs)
    datums = list(client.pps.list_datum(job=pps.Job(pipeline=pps.Pipeline(name=bad), id=commit.id)))
    assert datums and not any(TOKEN in str(d.to_dict()) for d in datums)

    secured.stop()  # flush and close the server log
    server_log = secured.log_path.read_text(errors="replace")
    assert "auth required" in server_log and TOKEN not in server_log
