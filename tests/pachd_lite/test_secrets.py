"""Pipeline secrets on pachd-lite through the unmodified SDK (pps_v2.API/*Secret, transform.secrets)."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import grpc
from pachyderm_sdk.api import pps

from tests.fixtures.pachd import unique_name
from tests.pachd_lite.sdk_helpers import PY, code_of, create_repo, job, put, read

PASSWORD = "s3cr3t-Pw-7f2a91c0de"
USERNAME = "trainer-bot"


def _manifest(
    name: str, *, data: dict[str, str] | None = None, string_data: dict[str, str] | None = None
) -> bytes:
    """What `kubectl create secret generic ... --dry-run=client -o json` prints."""
    manifest: dict = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque"}
    if data is not None:
        manifest["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    if string_data is not None:
        manifest["stringData"] = string_data
    return json.dumps(manifest).encode()


def _pipeline(
    client, name: str, repo: str, cmd: list[str], secrets: list[dict]
) -> pps.CreatePipelineV2Response:
    spec = {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": "/"}},
        "transform": {"cmd": cmd, "secrets": secrets},
    }
    return client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))


def _create_raw(client, file: bytes) -> None:
    """pps_v2.API/CreateSecret with a manifest as is (the SDK's create_secret(name=, data=) builds one)."""
    stub = client.pps
    super(type(stub), stub).create_secret(file=file)


def _secret_name() -> str:
    return unique_name("sec").lower().replace("_", "-")


def test_create_inspect_list_delete_never_return_values(pachd_client, pachd_server):
    name = _secret_name()
    _create_raw(pachd_client, _manifest(name, data={"username": USERNAME, "password": PASSWORD}))

    info = pachd_client.pps.inspect_secret(secret=pps.Secret(name=name))
    assert info.secret.name == name and info.type == "Opaque"
    assert info.creation_timestamp.year >= 2024
    listed = pachd_client.pps.list_secret()
    assert name in [i.secret.name for i in listed.secret_info]
    for message in (info, listed):
        wire = bytes(message) + message.to_json().encode()
        assert PASSWORD.encode() not in wire and base64.b64encode(PASSWORD.encode()) not in wire

    code, msg = code_of(_create_raw, pachd_client, _manifest(name, string_data={"password": "x"}))
    assert code == grpc.StatusCode.ALREADY_EXISTS and name in msg  # Kubernetes Create: no upsert

    pachd_client.pps.delete_secret(secret=pps.Secret(name=name))
    code, msg = code_of(pachd_client.pps.inspect_secret, secret=pps.Secret(name=name))
    assert code == grpc.StatusCode.NOT_FOUND and f'secret "{name}" not found' in msg
    assert name not in [i.secret.name for i in pachd_client.pps.list_secret().secret_info]
    assert PASSWORD not in pachd_server.log_path.read_text(errors="replace")


def test_bad_manifests_are_refused_without_echoing_values(pachd_client):
    cases = {
        b"apiVersion: v1\nkind: Secret\n": "failed to unmarshal secret",  # YAML: pachd wants JSON too
        json.dumps({"kind": "Secret", "metadata": {}}).encode(): "metadata.name is required",
        _manifest("Bad_Name", string_data={"k": "v"}): "lowercase DNS subdomain",
        json.dumps(
            {"kind": "Secret", "metadata": {"name": "x-" + _secret_name(), "labels": {"suite": "other"}}}
        ).encode(): "invalid suite label",
        json.dumps(
            {"kind": "Secret", "metadata": {"name": _secret_name()}, "data": {"password": PASSWORD}}
        ).encode(): (
            'data["password"] must be base64'  # a plain-text value in `data` (PASSWORD is not base64)
        ),
    }
    for file, expected in cases.items():
        code, msg = code_of(_create_raw, pachd_client, file)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and expected in msg, (file, msg)
        assert PASSWORD not in msg


def test_secret_reaches_user_code_as_env_var_and_is_masked_everywhere(pachd_client, pachd_server):
    name = _secret_name()
    # the SDK helper pachflow uses: it builds the manifest (`data`, base64) itself
    pachd_client.pps.create_secret(name=name, data={"username": USERNAME, "password": PASSWORD})
    data = create_repo(pachd_client, "data")
    pipe = unique_name("uses_secret")
    script = (
        "import os, hashlib\n"
        "pw = os.environ['MLFLOW_TRACKING_PASSWORD']\n"
        "open('/pfs/out/digest', 'w').write(hashlib.sha256(pw.encode()).hexdigest())\n"
        "open('/pfs/out/user', 'w').write(os.environ['MLFLOW_TRACKING_USERNAME'])\n"
        "print('password is', pw, flush=True)\n"
        "if os.environ.get('FAIL'):\n"
        "    raise SystemExit('failing on purpose with ' + pw)\n"
    )
    secrets = [
        {"name": name, "key": "username", "envVar": "MLFLOW_TRACKING_USERNAME"},
        {"name": name, "key": "password", "envVar": "MLFLOW_TRACKING_PASSWORD"},
    ]
    resp = _pipeline(pachd_client, pipe, data, [PY, "-c", script], secrets)
    assert PASSWORD not in resp.effective_create_pipeline_request_json
    assert json.loads(resp.effective_create_pipeline_request_json)["transform"]["secrets"][1] == {
        "name": name, "key": "password", "envVar": "MLFLOW_TRACKING_PASSWORD"
    }  # fmt: skip

    commit = put(pachd_client, data, {"/a": b"1"})
    info = job(pachd_client, pipe, commit.id)
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    assert (
        read(pachd_client, f"{pipe}@{commit.id}:/digest").decode()
        == hashlib.sha256(PASSWORD.encode()).hexdigest()
    )
    assert read(pachd_client, f"{pipe}@{commit.id}:/user") == USERNAME.encode()
    logs = [m.message for m in pachd_client.pps.get_logs(pipeline=pps.Pipeline(name=pipe))]
    assert "password is [redacted]" in logs
    assert not any(PASSWORD in line for line in logs)

    # a failing datum: the value is masked in the job reason too
    spec = json.loads(
        pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=pipe), details=True).effective_spec_json
    )
    spec["transform"]["env"] = {"FAIL": "1"}
    spec["datumTries"] = "1"
    pachd_client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec), update=True)
    commit = put(pachd_client, data, {"/b": b"2"})
    failed = job(pachd_client, pipe, commit.id)
    assert failed.state == pps.JobState.JOB_FAILURE
    assert "failing on purpose with [redacted]" in failed.reason and PASSWORD not in failed.reason
    pipeline_info = pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=pipe), details=True)
    assert PASSWORD not in pipeline_info.to_json()
    assert PASSWORD not in pachd_server.log_path.read_text(errors="replace")


def test_missing_secret_or_key_is_refused_at_create_and_mount_path_is_refused(pachd_client):
    data = create_repo(pachd_client, "data")
    name = _secret_name()

    def spec(*secrets: dict) -> str:
        return json.dumps(
            {"pipeline": {"name": unique_name("p")}, "input": {"pfs": {"repo": data, "glob": "/"}},
             "transform": {"cmd": ["true"], "secrets": list(secrets)}}
        )  # fmt: skip

    code, msg = code_of(
        pachd_client.pps.create_pipeline_v2,
        create_pipeline_request_json=spec({"name": name, "key": "password", "envVar": "PW"}),
    )
    assert code == grpc.StatusCode.NOT_FOUND and f'secret "{name}" not found' in msg
    assert "transform.secrets[0].name" in msg

    _create_raw(pachd_client, _manifest(name, string_data={"password": PASSWORD}))
    code, msg = code_of(
        pachd_client.pps.create_pipeline_v2,
        create_pipeline_request_json=spec({"name": name, "key": "token", "envVar": "PW"}),
    )
    assert code == grpc.StatusCode.NOT_FOUND and f'secret "{name}" has no key "token"' in msg

    code, msg = code_of(
        pachd_client.pps.create_pipeline_v2,
        create_pipeline_request_json=spec({"name": name, "mountPath": "/secrets"}),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "transform.secrets[0].mount_path" in msg

    code, msg = code_of(
        pachd_client.pps.create_pipeline_v2,
        create_pipeline_request_json=spec({"name": name, "key": "password"}),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "transform.secrets[0].env_var" in msg


def test_secret_deleted_after_create_fails_the_next_job_naming_it(pachd_factory):
    server = pachd_factory(env={"PACHD_LITE_SECRET_WAIT_S": "1"})  # jobs wait 1 s for a missing secret
    pachd_client = server.client()
    name = _secret_name()
    _create_raw(pachd_client, _manifest(name, string_data={"password": PASSWORD}))
    data = create_repo(pachd_client, "data")
    pipe = unique_name("p")
    _pipeline(pachd_client, pipe, data, ["true"], [{"name": name, "key": "password", "envVar": "PW"}])
    pachd_client.pps.delete_secret(secret=pps.Secret(name=name))
    commit = put(pachd_client, data, {"/a": b"1"})
    info = job(pachd_client, pipe, commit.id)
    assert info.state == pps.JobState.JOB_FAILURE
    assert f'secret "{name}" not found' in info.reason


def test_a_job_waits_for_a_secret_being_replaced(pachd_client):
    """Replacing a secret is delete + create (Kubernetes' Create is no upsert): a job starting in
    between waits for it instead of failing, and sees the new value."""
    name = _secret_name()
    _create_raw(pachd_client, _manifest(name, string_data={"password": "old-value-1234"}))
    data = create_repo(pachd_client, "data")
    pipe = unique_name("p")
    _pipeline(
        pachd_client, pipe, data, ["sh", "-c", "printf %s \"$PW\" | wc -c > /pfs/out/len"],
        [{"name": name, "key": "password", "envVar": "PW"}],
    )  # fmt: skip
    for j in pachd_client.pps.list_job(pipeline=pps.Pipeline(name=pipe)):  # the creation job ends first
        job(pachd_client, pipe, j.job.id)
    pachd_client.pps.delete_secret(secret=pps.Secret(name=name))
    commit = put(pachd_client, data, {"/a": b"1"})
    job_ref = pps.Job(pipeline=pps.Pipeline(name=pipe), id=commit.id)
    deadline = time.monotonic() + 20
    while not any(
        "waiting up to" in m.message and f'secret "{name}" not found' in m.message
        for m in pachd_client.pps.get_logs(job=job_ref, master=True)
    ):
        assert time.monotonic() < deadline, "the job never reported waiting for the secret"
        time.sleep(0.1)
    assert pachd_client.pps.inspect_job(job=job_ref).state == pps.JobState.JOB_RUNNING
    _create_raw(pachd_client, _manifest(name, string_data={"password": "new-value-123456"}))
    info = job(pachd_client, pipe, commit.id)
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    assert read(pachd_client, f"{pipe}@{commit.id}:/len").strip() == b"16"  # the new value


def test_values_stay_masked_after_a_restart(pachd_factory):
    server = pachd_factory()
    client = server.client()
    name = _secret_name()
    _create_raw(client, _manifest(name, string_data={"password": PASSWORD}))
    server.restart()
    client = server.client()
    data = create_repo(client, "data")
    pipe = unique_name("p")
    _pipeline(
        client, pipe, data, ["sh", "-c", "echo got $PW"], [{"name": name, "key": "password", "envVar": "PW"}]
    )
    commit = put(client, data, {"/a": b"1"})
    assert job(client, pipe, commit.id).state == pps.JobState.JOB_SUCCESS
    logs = [m.message for m in client.pps.get_logs(pipeline=pps.Pipeline(name=pipe))]
    assert "got [redacted]" in logs
    assert name in [i.secret.name for i in client.pps.list_secret().secret_info]


def test_redactor_masks_added_values_longest_first_and_each_line_of_multiline_ones():
    from pachd_lite.auth import MASK, Redactor

    redact = Redactor(["token-0123"])
    redact.add(["abc", "pass-word", "pass-word-long", "-----BEGIN KEY-----\nAAAABBBBCCCC\nDD\n"])
    assert redact("token-0123 pass-word-long pass-word") == f"{MASK} {MASK} {MASK}"
    assert redact("key line AAAABBBBCCCC") == f"key line {MASK}"  # logs arrive line by line
    assert redact("abc DD") == "abc DD"  # too short to mask without masking ordinary words
