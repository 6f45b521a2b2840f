"""Attacks on pachd-lite's PPS side (issue 18): lost datums, the worker API, user code reaching the store.

Real servers (``pachd-lite serve`` subprocesses), real user-code subprocesses, the unmodified SDK.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import grpc
import pytest
from pachyderm_sdk.api import pps

from tests.fixtures.pachd import unique_name
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
