"""Attacks on pachd-lite's PPS side (issue 18): lost datums, the worker API, user code reaching the store.

Real servers (``pachd-lite serve`` subprocesses), real user-code subprocesses, the unmodified SDK.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import psutil
import pytest
from pachyderm_sdk.api import pfs, pps

from tests.fixtures.pachd import PachdProcess, unique_name
from tests.pachd_lite.sdk_helpers import PY, code_of, create_pipeline, create_repo, job, put, read

LONG_NAME = "n" * 300  # over the 255 bytes a host file name may have


# --- 1. no job succeeds while datums never ran ------------------------------------------------------

# user code that copies its input and, for the file "bad", writes the hostile output name it is given
WRITE_OUTPUT = (
    "import os, shutil, sys\n"
    "p = os.environ['{repo}']\n"
    "shutil.copy(p, '/pfs/out/' + os.path.basename(p))\n"
    "if os.path.basename(p) == 'bad':\n"
    "    open(os.fsencode('/pfs/out/') + {name!r}, 'w').write('x')\n"
)


@pytest.mark.parametrize(
    ("attack", "files", "output_name", "words"),
    [
        ("input name too long", {"/a": b"1", "/b": b"2", f"/{LONG_NAME}": b"3"}, None, [LONG_NAME[:40]]),
        ("newline in output name", {"/a": b"1", "/bad": b"2", "/c": b"3"}, b"two\nlines", ["two\\nlines"]),
        ("output name not UTF-8", {"/a": b"1", "/bad": b"2", "/c": b"3"}, b"caf\xe9", ["caf\\xe9", "UTF-8"]),
    ],
)
@pytest.mark.parametrize("batching", [False, True], ids=["per-datum", "batched"])
def test_a_datum_the_machinery_cannot_handle_fails_the_job(
    pachd_client, attack, files, output_name, words, batching
):
    data = create_repo(pachd_client, "data")
    name = unique_name("lost")
    code = WRITE_OUTPUT.format(repo=data, name=output_name or b"unused")
    transform = {"cmd": [PY, "-c", code]}
    if batching:
        transform = {
            "cmd": [PY, "-c", "from pachyderm_sdk import batch_all_datums\n@batch_all_datums\ndef main():\n"
                    + "".join("    " + line + "\n" for line in code.splitlines()) + "main()\n"],
            "datumBatching": True,
        }  # fmt: skip
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, [], transform=transform, datum_tries=1
    )
    commit = put(pachd_client, data, files)
    info = job(pachd_client, name, commit.id)
    assert info.state == pps.JobState.JOB_FAILURE, (attack, info.state, info.reason)
    assert info.data_failed >= 1 and info.data_total == 3, info
    datums = list(pachd_client.pps.list_datum(job=pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)))
    failed = [d for d in datums if d.state == pps.DatumState.FAILED]
    assert len(failed) == 1, [(d.datum.id, d.state) for d in datums]
    assert failed[0].datum.id in info.reason
    for word in words:
        assert word in info.reason, (attack, info.reason)


# --- 3. the worker API answers only the job's own user code -------------------------------------------

TOKEN = "tok-" + "5a4b3c2d1e0f" * 3

# datum batching by hand with the SDK's worker stub, so the NextDatum env itself can be inspected
BATCH_LOOP = """
import os, time
from pachyderm_sdk import Client
worker = Client.new_in_cluster().worker
print('worker port', os.environ['PPS_WORKER_GRPC_PORT'], flush=True)
deadline = time.time() + 30
while not os.path.exists(os.environ['GO_FILE']) and time.time() < deadline:
    time.sleep(0.05)
token = os.environ['PACH_TOKEN']
while True:
    env = dict(item.split('=', 1) for item in worker.next_datum().env)
    dotenv = open(os.environ['PACHD_LITE_DOTENV']).read()
    leaked = sorted(k for k, v in env.items() if token in v) + (['.env'] if token in dotenv else [])
    open('/pfs/out/' + os.path.basename(env['{repo}']), 'w').write(repr(leaked))
"""


def _worker_call(port: int, method: str, request: bytes = b"", token: str | None = None):
    metadata = [("authn-token", token)] if token is not None else None
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        call = channel.unary_unary(f"/pachyderm.worker.Worker/{method}")
        return call(request, metadata=metadata, timeout=5)


def test_worker_api_refuses_callers_that_are_not_the_jobs_user_code(pachd_factory, tmp_path):
    server = pachd_factory(auth_token=TOKEN)
    client = server.client()
    data = create_repo(client, "data")
    name = unique_name("batcher")
    go = Path(tempfile.gettempdir()) / f"pachd-lite-go-{uuid.uuid4().hex}"  # any uid may see it
    transform = {"cmd": [PY, "-c", BATCH_LOOP.replace("{repo}", data)], "datumBatching": True,
                 "env": {"GO_FILE": str(go)}}  # fmt: skip
    create_pipeline(client, name, {"pfs": {"repo": data, "glob": "/*"}}, [], transform=transform)
    commit = put(client, data, {"/a": b"1", "/b": b"2", "/c": b"3"})
    try:
        port = _wait_for_log(client, name, "worker port ")
        for token in (None, "", TOKEN[:-1] + "X"):  # an outsider: no token, empty, wrong
            for method in ("NextDatum", "NextDatum", "Status", "Cancel"):
                code, message = code_of(_worker_call, port, method, token=token)
                assert code == grpc.StatusCode.UNAUTHENTICATED, (method, token, code)
                assert TOKEN not in message
        # the server's own token still works (an operator probing the worker)
        assert b"pachd-lite" in _worker_call(port, "Status", token=TOKEN)
    finally:
        go.touch()
    try:
        info = job(client, name, commit.id)
    finally:
        go.unlink()
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    assert (info.data_total, info.data_processed) == (3, 3)
    for f in ("a", "b", "c"):  # every datum ran in the user code, none leaked the token
        assert read(client, f"{name}@{commit.id}:/{f}") == b"[]"


def _wait_for_log(client, pipeline: str, prefix: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in client.pps.get_logs(pipeline=pps.Pipeline(name=pipeline)):
            if line.message.startswith(prefix):
                return int(line.message[len(prefix) :])
        time.sleep(0.1)
    raise AssertionError(f"no log line starting with {prefix!r} from {pipeline} in {timeout}s")


# --- 4. user code cannot change a finished commit or climb into the store -------------------------------

# Writes its output, leaves a detached process (own session, no pipes) holding a write fd on it
# that rewrites it after the job ended, and looks for the storage root above its sandbox.
TAMPER = """
import os, time
open('/pfs/out/result', 'w').write('original')
fd = os.open('/pfs/out/result', os.O_WRONLY)
pid = os.fork()
if pid == 0:
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(devnull, std)
    time.sleep(1.5)
    os.pwrite(fd, b'TAMPERED', 0)
    os._exit(0)
here = os.path.abspath('/pfs/out')
found = []
while here != '/':
    here = os.path.dirname(here)
    found += [os.path.join(here, n) for n in ('pachd.sqlite', 'blobs') if os.path.exists(os.path.join(here, n))]
print('daemon', pid, flush=True)
print('sandbox', os.getcwd(), flush=True)
print('found above the sandbox:', found, flush=True)
"""


def test_a_detached_process_cannot_change_a_finished_commit(pachd_factory):
    server = pachd_factory()
    client = server.client()
    data, other = create_repo(client, "data"), create_repo(client, "other")
    name = unique_name("tamper")
    create_pipeline(client, name, {"pfs": {"repo": data, "glob": "/"}}, [PY, "-c", TAMPER])
    commit = put(client, data, {"/x": b"x"})
    info = job(client, name, commit.id)
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    logs = [m.message for m in client.pps.get_logs(pipeline=pps.Pipeline(name=name))]
    daemon = int(next(line for line in logs if line.startswith("daemon ")).split()[1])
    sandbox = next(line for line in logs if line.startswith("sandbox ")).split(" ", 1)[1]
    # the detached process died with its datum (it never got to write)
    deadline = time.monotonic() + 5
    while psutil.pid_exists(daemon) and psutil.Process(daemon).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"process {daemon} the user code detached still runs"
        time.sleep(0.05)
    time.sleep(1.6)  # past the moment it would have written
    original = hashlib.blake2b(b"original", digest_size=32).digest()
    assert read(client, f"{name}@{commit.id}:/result") == b"original"
    assert client.pfs.inspect_file(file=pfs.File.from_uri(f"{name}@{commit.id}:/result")).hash == original
    put(client, other, {"/same": b"original"})  # deduplicated onto the job's blob: still intact
    assert read(client, f"{other}@master:/same") == b"original"
    # the sandbox is outside the storage root: nothing of the store lies above it
    assert not Path(sandbox).resolve().is_relative_to(server.root.resolve())
    assert "found above the sandbox: []" in logs, logs


PROBE_THE_STORE = """
import json, os, shutil
store, secret, mine = os.environ['STORE'], os.environ['SECRET'], os.environ[os.environ['IN']]
tried = {}
for what, attempt in [
    ('read the database', lambda: open(os.path.join(store, 'pachd.sqlite'), 'rb').read(1)),
    ('list the root', lambda: os.listdir(store)),
    ('write an input in place', lambda: open(mine, 'r+b').write(b'X')),
    ('read a root-only file', lambda: open(secret, 'rb').read()),
]:
    try:
        attempt()
        tried[what] = 'allowed'
    except PermissionError:
        tried[what] = 'denied'
shutil.copy(mine, '/pfs/out/copy')
open('/pfs/out/report', 'w').write(json.dumps(tried))
print('uid', os.getuid(), flush=True)
if os.environ.get('LINK'):
    os.symlink(secret, '/pfs/out/leak')
"""


SYSTEM_PY = "/usr/bin/python3"  # one nobody may run (this venv's interpreter may live under /root)


@pytest.mark.skipif(os.geteuid() != 0, reason="running user code as another user needs root")
@pytest.mark.skipif(not os.access(SYSTEM_PY, os.X_OK), reason=f"no {SYSTEM_PY}")
def test_user_code_run_as_another_user_cannot_reach_the_store(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="pachd-lite-runas-"))
    os.chmod(base, 0o755)  # only pachd-lite's own permissions protect the root below
    secret = base / "secret"
    secret.write_bytes(b"root only")
    os.chmod(secret, 0o600)
    server = PachdProcess(base / "root", env={"PACHD_LITE_USER_CODE_USER": "nobody"})
    try:
        server.start()
        client = server.client()
        data = create_repo(client, "data")
        env = {"STORE": str(server.root), "SECRET": str(secret), "IN": data}
        probe, leak = unique_name("probe"), unique_name("leak")
        for name, extra in ((probe, {}), (leak, {"LINK": "1"})):
            create_pipeline(
                client, name, {"pfs": {"repo": data, "glob": "/*"}}, [],
                transform={"cmd": [SYSTEM_PY, "-c", PROBE_THE_STORE], "env": {**env, **extra}}, datum_tries=1,
            )  # fmt: skip
        commit = put(client, data, {"/x": b"input"})
        info = job(client, probe, commit.id)
        assert info.state == pps.JobState.JOB_SUCCESS, info.reason
        report = json.loads(read(client, f"{probe}@{commit.id}:/report"))
        assert set(report.values()) == {"denied"}, report
        assert read(client, f"{probe}@{commit.id}:/copy") == b"input"  # inputs readable, outputs stored
        assert read(client, f"{data}@{commit.id}:/x") == b"input"
        uid = [
            m.message
            for m in client.pps.get_logs(pipeline=pps.Pipeline(name=probe))
            if m.message.startswith("uid")
        ]
        assert uid == [f"uid {pwd.getpwnam('nobody').pw_uid}"]
        # a symlink cannot make pachd-lite (root) read a file for the user code
        failed = job(client, leak, commit.id)
        assert failed.state == pps.JobState.JOB_FAILURE
        assert "/pfs/out/leak is a symlink out of the sandbox" in failed.reason, failed.reason
        assert b"root only" not in b"".join(
            read(client, f"{leak}@{commit.id}:/{f.file.path}") for f in client.pfs.walk_file(
                file=pfs.File.from_uri(f"{leak}@{commit.id}:/")) if f.file_type == pfs.FileType.FILE
        )  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# --- stop_pipeline stops the running job and its processes ---------------------------------------------


def test_stop_pipeline_kills_the_running_job_and_its_processes(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("stoppable")
    code = "import os, time\nprint('pid', os.getpid(), flush=True)\ntime.sleep(60)\n"
    create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/"}}, [PY, "-c", code])
    commit = put(pachd_client, data, {"/a": b"a"})
    pid = _wait_for_log(pachd_client, name, "pid ")
    pachd_client.pps.stop_pipeline(pipeline=pps.Pipeline(name=name))
    info = job(pachd_client, name, commit.id)
    assert info.state == pps.JobState.JOB_KILLED and "pipeline stopped" in info.reason, info
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"user process {pid} of the stopped pipeline still runs"
        time.sleep(0.05)
    out = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{name}@{commit.id}"))
    assert out.error  # the output commit is finished with the reason, as for any killed job


# --- job logs are capped and streamed --------------------------------------------------------------------

LOG_CAP = 1024 * 1024
CHATTY = "import sys\nfor i in range({n}):\n    sys.stdout.write('line %07d %s\\n' % (i, 'x' * 88))\n"


def test_job_logs_keep_the_newest_lines_under_a_cap(pachd_factory):
    server = pachd_factory(env={"PACHD_LITE_JOB_LOG_BYTES": str(LOG_CAP)})
    client = server.client()
    data = create_repo(client, "data")
    name = unique_name("chatty")
    lines = 30_000  # 3 MB of output, three times the cap
    create_pipeline(client, name, {"pfs": {"repo": data, "glob": "/"}}, [PY, "-c", CHATTY.format(n=lines)])
    commit = put(client, data, {"/a": b"a"})
    assert job(client, name, commit.id).state == pps.JobState.JOB_SUCCESS
    ref = pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)
    everything = [m for m in client.pps.get_logs(job=ref)]  # the user code's lines and the worker's
    got = [m.message for m in everything if m.user]
    assert LOG_CAP // 2 < sum(len(m) for m in got) <= LOG_CAP
    assert got[-1].startswith(f"line {lines - 1:07d}")  # the newest lines are kept, in order
    assert not got[0].startswith("line 0000000")  # the oldest were dropped
    numbers = [int(m.split()[1]) for m in got]
    assert numbers == list(range(numbers[0], lines))
    master = [m.message for m in client.pps.get_logs(job=ref, master=True)]
    assert any("oldest lines were dropped" in m for m in master), master
    assert [m.message for m in client.pps.get_logs(job=ref, tail=2)] == [m.message for m in everything[-2:]]
