"""Conformance: the unmodified SDK against pachd-lite, asserting what pachd 2.12 answers.

Each test names the pachd source (pachyderm/pachyderm, 2.12) whose behaviour it pins.
"""

from __future__ import annotations

import json
import time

import grpc
import pytest
from pachyderm_sdk.api import auth, pfs, pps
from pachyderm_sdk.errors import AuthServiceNotActivated

from pachd_lite.pps.datums import Match, compute_datums
from pachd_lite.pps.spec import apply_defaults, parse_create_pipeline_request
from tests.fixtures.pachd import unique_name
from tests.pachd_lite.sdk_helpers import code_of, create_pipeline, create_repo, job, put


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
