"""Conformance: the unmodified SDK against pachd-lite, asserting what pachd 2.12 answers.

Each test names the pachd source (pachyderm/pachyderm, 2.12) whose behaviour it pins.
"""

from __future__ import annotations

import json
import time

import betterproto
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


# --- commit branch ---
def _on_wire(msg) -> bool:
    return betterproto.serialized_on_wire(msg)


def test_commit_info_names_the_branch_the_commit_was_made_on(pachd_client):
    """src/server/pfs/server/server_commit.go (newUserCommitInfo sets Commit.Branch; createCommitOnBranch
    -> upsertBranchAndSyncCommit stores its branch_id) and src/internal/pfsdb/model.go (CommitRow.Pb:
    the branch when branch_id joins a branch): InspectCommit, ListCommit, SubscribeCommit and
    InspectCommitSet name the branch, started/finishing/finished are set once finished."""
    data = create_repo(pachd_client, "cbranch")
    first = put(pachd_client, data, {"/a": b"a"})
    second = put(pachd_client, data, {"/b": b"b"})
    repo = pfs.Repo(name=data, type="user", project=pfs.Project(name="default"))
    info = pachd_client.pfs.inspect_commit(commit=pfs.Commit(repo=repo, id=second.id))
    assert info.commit.repo == repo
    assert info.commit.id == second.id
    assert info.commit.branch == pfs.Branch(repo=repo, name="master")
    assert info.parent_commit == pfs.Commit(
        repo=repo, id=first.id, branch=pfs.Branch(repo=repo, name="master")
    )
    assert info.started <= info.finishing <= info.finished
    listed = {c.commit.id: c.commit.branch.name for c in pachd_client.pfs.list_commit(repo=repo)}
    assert listed == {first.id: "master", second.id: "master"}
    sub = next(iter(pachd_client.pfs.subscribe_commit(repo=repo, branch="master", from_=first)))
    assert (sub.commit.id, sub.commit.branch.name) == (second.id, "master")
    in_set = pachd_client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=second.id))
    assert [c.commit.branch.name for c in in_set] == ["master"]


def test_commit_keeps_its_own_branch_when_another_branch_points_at_it(pachd_client):
    """src/server/pfs/server/server_branch.go (createBranch with a head: upsertBranchAndSyncCommit with
    no new head leaves the commit's branch_id): the commit still names the branch it was made on."""
    data = create_repo(pachd_client, "cbranch")
    commit = put(pachd_client, data, {"/a": b"a"})
    staging = pfs.Branch.from_uri(f"{data}@staging")
    pachd_client.pfs.create_branch(branch=staging, head=pfs.Commit.from_uri(f"{data}@{commit.id}"))
    info = pachd_client.pfs.inspect_commit(commit=pfs.Commit(branch=staging, repo=staging.repo))
    assert (info.commit.id, info.commit.branch.name) == (commit.id, "master")


def test_commit_names_no_branch_once_its_branch_is_deleted(pachd_client):
    """src/internal/pfsdb/commits.go (getCommit: LEFT JOIN pfs.branches ON commit.branch_id) and
    model.go (CommitRow.Pb sets Branch only when the join finds one): after DeleteBranch the commit
    carries no branch, and a new branch of that name (a new branch id) does not bring it back."""
    data = create_repo(pachd_client, "cbranch")
    commit = put(pachd_client, data, {"/a": b"a"})
    by_id = pfs.Commit.from_uri(f"{data}@{commit.id}")
    pachd_client.pfs.delete_branch(branch=pfs.Branch.from_uri(f"{data}@master"))
    info = pachd_client.pfs.inspect_commit(commit=by_id)
    assert info.commit.id == commit.id
    assert not _on_wire(info.commit.branch)
    assert info.finished
    pachd_client.pfs.create_branch(branch=pfs.Branch.from_uri(f"{data}@master"), head=by_id)
    assert not _on_wire(pachd_client.pfs.inspect_commit(commit=by_id).commit.branch)
    listed = list(pachd_client.pfs.list_commit(repo=pfs.Repo.from_uri(data)))
    assert [(c.commit.id, _on_wire(c.commit.branch)) for c in listed] == [(commit.id, False)]
