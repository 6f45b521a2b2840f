"""Conformance: the unmodified SDK against pachd-lite, asserting what pachd 2.12 answers.

Each test names the pachd source (pachyderm/pachyderm, 2.12) whose behaviour it pins.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time

import grpc
import pytest
from pachyderm_sdk.api import auth, pfs, pps
from pachyderm_sdk.errors import AuthServiceNotActivated

from pachd_lite.pps.datums import Match, compute_datums
from pachd_lite.pps.spec import apply_defaults, parse_create_pipeline_request
from tests.fixtures.pachd import unique_name
from tests.pachd_lite.sdk_helpers import code_of, create_pipeline, create_repo, job, put, read


def test_input_without_project_reads_the_pipelines_project(pachd_client):
    """src/server/pps/server/api_server.go (validateInput): an input without a project reads the
    pipeline's project, also when a same-named repo exists in `default`."""
    project, repo, name = unique_name("proj"), unique_name("data"), unique_name("own")
    pachd_client.pfs.create_project(project=pfs.Project(name=project))
    for p in ("default", project):
        pachd_client.pfs.create_repo(repo=pfs.Repo(name=repo, project=pfs.Project(name=p)))
    put(pachd_client, repo, {"/from-default": b"d"})
    spec = {
        "pipeline": {"name": name, "project": {"name": project}},
        "input": {"pfs": {"repo": repo, "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", "cp /pfs/" + repo + "/* /pfs/out/"]},
    }
    pachd_client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    with pachd_client.pfs.commit(branch=pfs.Branch.from_uri(f"{project}/{repo}@master")) as c:
        c.put_file_from_bytes("/from-own", b"o")
    info = pachd_client.pps.inspect_job(
        job=pps.Job(pipeline=pps.Pipeline(name=name, project=pfs.Project(name=project)), id=c.id), wait=True
    )
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    datums = list(pachd_client.pps.list_datum(job=info.job))
    paths = [(f.file.commit.repo.project.name, f.file.path) for d in datums for f in d.data]
    assert paths == [(project, "/from-own")]
    files = [
        i.file.path for i in pachd_client.pfs.list_file(file=pfs.File.from_uri(f"{project}/{name}@master:/"))
    ]
    assert files == ["/from-own"]


def test_input_defaults_are_one_rule_for_spec_and_datums():
    """src/server/pps/server/api_server.go (validateInput, setInputDefaults): the effective spec and
    the datums of a raw input agree on the input's project (the pipeline's)."""
    req = parse_create_pipeline_request(
        json.dumps({"pipeline": {"name": "p", "project": {"name": "proj"}}, "input": {"pfs": {"repo": "r", "glob": "/*"}},
                    "transform": {"cmd": ["true"]}})
    )  # fmt: skip
    seen = []

    def list_matches(ref, glob):
        seen.append((ref.project, ref.repo, ref.branch))
        return [Match(path="/a", hash="00", is_dir=False, size=1)]

    datums = compute_datums(req.input, list_matches, "salt", project="proj")
    assert seen == [("proj", "r", "master")]
    assert [(i.project, i.name) for d in datums for i in d.inputs] == [("proj", "r")]
    assert apply_defaults(req).input.pfs.project == "proj"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.auth.who_am_i(),
        lambda c: c.auth.get_roles_for_permission(permission=auth.Permission.REPO_READ),
        lambda c: c.auth.authorize(
            resource=auth.Resource(type=auth.ResourceType.CLUSTER), permissions=[auth.Permission.REPO_READ]
        ),
        lambda c: c.auth.get_role_binding(resource=auth.Resource(type=auth.ResourceType.CLUSTER)),
    ],
    ids=["WhoAmI", "GetRolesForPermission", "Authorize", "GetRoleBinding"],
)
def test_auth_api_answers_not_activated(pachd_client, call):
    """src/auth/auth.go (ErrNotActivated: UNIMPLEMENTED "the auth service is not activated"),
    src/server/auth/server/api_server.go and src/internal/middleware/auth/interceptor.go (the
    `authenticated`/`clusterPermissions` checks call WhoAmI/Authorize, which answer it): the SDK
    raises AuthServiceNotActivated."""
    with pytest.raises(AuthServiceNotActivated, match="^the auth service is not activated$"):
        call(pachd_client)


def test_auth_not_activated_is_unimplemented_on_the_wire(pachd_server):
    """src/auth/auth.go: ErrNotActivated is codes.Unimplemented (clients without the SDK's mapping)."""
    with grpc.insecure_channel(f"{pachd_server.connect_host}:{pachd_server.port}") as channel:
        who_am_i = channel.unary_unary(
            "/auth_v2.API/WhoAmI",
            request_serializer=bytes,
            response_deserializer=auth.WhoAmIResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as err:
            who_am_i(auth.WhoAmIRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert err.value.details() == "the auth service is not activated"


def test_restart_datum_with_a_filter_matching_no_datum(pachd_client):
    """src/server/pps/server/api_server.go (RestartDatum) and src/server/worker/server/client.go
    (Cancel): no datum of the job matches the filter -> a plain error (UNKNOWN) naming filter and job."""
    data, name = create_repo(pachd_client, "data"), unique_name("restart")
    create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, ["sh", "-c", "true"])
    commit = put(pachd_client, data, {"/a": b"a", "/b": b"b"})
    info = job(pachd_client, name, commit.id)
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    code, msg = code_of(pachd_client.pps.restart_datum, job=info.job, data_filters=["/nope", "/x"])
    assert code == grpc.StatusCode.UNKNOWN
    assert msg == f"datum matching filter [/nope /x] could not be found for job ID {commit.id}"
    pachd_client.pps.restart_datum(job=info.job, data_filters=["/a"])  # a datum of the job matches


def test_delete_job_stops_a_running_job_then_deletes_it(pachd_client, tmp_path):
    """src/server/pps/server/api_server.go (DeleteJob -> deleteJobInTransaction: stopJob with
    "job deleted", then the job is deleted): a running job is not refused."""
    data, name = create_repo(pachd_client, "data"), unique_name("deljob")
    marker = tmp_path / "started"
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/"}}, ["sh", "-c", f"touch {marker}; sleep 60"]
    )
    commit = put(pachd_client, data, {"/a": b"a"})
    job_msg = pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)
    deadline = time.monotonic() + 30
    while not marker.exists():  # the user code is running
        assert time.monotonic() < deadline, "user code never started"
        time.sleep(0.05)
    started = time.monotonic()
    pachd_client.pps.delete_job(job=job_msg)
    assert not pachd_client.pps.job_exists(job_msg)
    out = pachd_client.pfs.inspect_commit(
        commit=pfs.Commit.from_uri(f"{name}@{commit.id}"), wait=pfs.CommitState.FINISHED
    )
    assert out.error == "job deleted"
    assert time.monotonic() - started < 30  # stopped, not waited for
    time.sleep(1)  # the runner noticed; it must not bring the job back
    assert not pachd_client.pps.job_exists(job_msg)
    assert commit.id not in [j.job.id for j in pachd_client.pps.list_job(pipeline=pps.Pipeline(name=name))]


# --- worker logs and RestartDatum ---

WORKER_TASK = ["started process datum set task", "finished process datum set task"]
FINISHED = re.compile(r"^finished running user code after [0-9.]+(ns|µs|ms|s)$")
CANCELED = re.compile(
    r"^errored running user code after [0-9.]+(ns|µs|ms|s): signal: killed because context canceled$"
)


def _follow(client, job_ref: pps.Job) -> tuple[list[pps.LogMessage], threading.Thread]:
    """Lines of ``get_logs(job=..., follow=True)``, collected by a thread (the stream never ends)."""
    got: list[pps.LogMessage] = []

    def collect() -> None:
        with contextlib.suppress(grpc.RpcError):
            got.extend(client.pps.get_logs(job=job_ref, follow=True))

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    return got, thread


def _wait_for(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_get_logs_follow_yields_the_workers_lines_of_a_silent_job(pachd_server, pachd_client):
    """src/server/worker/pipeline/transform/worker.go (processDatumSetTask: logger.LogStep "process
    datum set task"; forEachDatum: logger.WithData per datum), src/server/worker/driver/driver.go
    (RunUserCode: "beginning to run user code", "finished running user code after %v"),
    src/server/worker/logs/logger.go (jobId, datumId, data fields; user only on the user code's
    lines) and src/server/pps/server/api_server.go + src/internal/ppsutil/util.go (GetLogs /
    FilterLogLines: non-master lines of the job, `datum`, `data_filters` via common.MatchDatum, `master`):
    a job whose user code prints nothing still streams the worker's lines to a follower."""
    data, name = create_repo(pachd_client, "data"), unique_name("silent")
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, ["sh", "-c", f"cp /pfs/{data}/* /pfs/out/"]
    )
    commit = put(pachd_client, data, {"/a": b"a", "/b": b"b"})
    job_ref = pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)
    follower = pachd_server.client()
    got, thread = _follow(follower, job_ref)
    try:
        _wait_for(lambda: sum(bool(FINISHED.match(m.message)) for m in got) == 2, "both datums' worker lines")
    finally:
        follower._channel.close()  # the SDK has no close(): this ends the follow stream
        thread.join(10)
    assert not thread.is_alive()
    assert job(pachd_client, name, commit.id).state == pps.JobState.JOB_SUCCESS
    files = {d.datum.id: d.data[0] for d in pachd_client.pps.list_datum(job=job_ref)}
    assert sorted(f.file.path for f in files.values()) == ["/a", "/b"]
    for m in got:
        assert (m.project_name, m.pipeline_name, m.job_id) == ("default", name, commit.id)
        assert not m.master and not m.user and m.ts is not None
    for datum_id, info in files.items():
        lines = [m for m in got if m.datum_id == datum_id]
        assert lines[0].message == "beginning to run user code" and FINISHED.match(lines[1].message)
        assert len(lines) == 2, [m.message for m in lines]
        assert all([(f.path, f.hash) for f in m.data] == [(info.file.path, info.hash)] for m in lines)
    assert got[0].message == WORKER_TASK[0] and not got[0].datum_id and not got[0].data

    everything = list(pachd_client.pps.get_logs(job=job_ref))
    task_lines = [m.message for m in everything if not m.datum_id]
    assert task_lines == WORKER_TASK  # one datum set task (parallelism 1)
    a_id = next(i for i, f in files.items() if f.file.path == "/a")
    b_hash = next(f.hash for f in files.values() if f.file.path == "/b")
    only_a = list(pachd_client.pps.get_logs(job=job_ref, data_filters=["/a"]))
    assert {m.datum_id for m in only_a} == {a_id} and len(only_a) == 2
    only_b = list(pachd_client.pps.get_logs(job=job_ref, data_filters=[b_hash.hex()]))
    assert {m.data[0].path for m in only_b} == {"/b"} and len(only_b) == 2
    by_datum = list(pachd_client.pps.get_logs(job=job_ref, datum=pps.Datum(job=job_ref, id=a_id)))
    assert [m.message for m in by_datum] == [m.message for m in only_a]
    master = list(pachd_client.pps.get_logs(job=job_ref, master=True))
    assert master and all(m.master and not m.user and not m.datum_id for m in master)


@pytest.mark.parametrize(
    ("tries", "state"),
    [(3, pps.JobState.JOB_SUCCESS), (1, pps.JobState.JOB_FAILURE)],
    ids=["retried", "last-try"],
)
def test_restart_datum_cancels_the_running_try_and_the_datum_is_retried(pachd_client, tmp_path, tries, state):
    """src/server/pps/server/api_server.go (RestartDatum -> workerserver.Cancel),
    src/server/worker/pipeline/transform/status.go (Status.Cancel: the running datum matching the
    job and data_filters is cancelled) and transform/worker.go + src/server/worker/datum/datum.go
    (forEachDatum gives each try its own cancel; Set.WithDatum retries a failed try up to
    datum_tries, so the cancelled try counts): the user code is killed at once and the datum is
    tried again; with datumTries 1 the cancelled try was its last, and the datum fails."""
    data, name = create_repo(pachd_client, "data"), unique_name("restart")
    marker = tmp_path / "first-try"
    script = f"if [ -e {marker} ]; then cp /pfs/{data}/a /pfs/out/; else touch {marker}; sleep 60; fi"
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, ["sh", "-c", script], datumTries=tries
    )
    commit = put(pachd_client, data, {"/a": b"a"})
    job_ref = pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)
    _wait_for(marker.exists, "the first try to start")
    started = time.monotonic()
    pachd_client.pps.restart_datum(job=job_ref, data_filters=["/a"])
    info = job(pachd_client, name, commit.id)
    assert time.monotonic() - started < 30  # interrupted, not waited for (the first try sleeps 60s)
    assert info.state == state, info.reason
    (datum,) = pachd_client.pps.list_datum(job=job_ref)
    worker = [m.message for m in pachd_client.pps.get_logs(job=job_ref, datum=datum.datum) if not m.user]
    assert worker[0] == "beginning to run user code" and CANCELED.match(worker[1]), worker
    if tries == 1:
        assert datum.state == pps.DatumState.FAILED and len(worker) == 2, worker
        return
    assert datum.state == pps.DatumState.SUCCESS
    assert worker[2] == "beginning to run user code" and FINISHED.match(worker[3]) and len(worker) == 4, (
        worker
    )
    assert read(pachd_client, f"{name}@master:/a") == b"a"
