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
from tests.pachd_lite.sdk_helpers import PY, code_of, create_pipeline, create_repo, job, put


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


# --- datums: failures, FINISHING, meta ---


def _meta_commit(pipeline: str, commit_id: str) -> pfs.Commit:
    return pfs.Commit(repo=pfs.Repo(name=pipeline, type="meta"), id=commit_id)


def _get(client, commit: pfs.Commit, path: str) -> bytes:
    return b"".join(v.value for v in client.pfs.get_file(file=pfs.File(commit=commit, path=path)))


def _paths(client, commit: pfs.Commit, path: str) -> list[str]:
    return sorted(f.file.path for f in client.pfs.list_file(file=pfs.File(commit=commit, path=path)))


FAIL_ON_BOOM = (
    "import os, sys\n"
    "name = os.path.basename(os.environ['{repo}'])\n"
    "if name.startswith('boom'):\n"
    "    print('failing on purpose', flush=True)\n"
    "    {exit}\n"
    "open('/pfs/out/' + name, 'w').write('ok')\n"
)


@pytest.mark.parametrize("batching", [False, True], ids=["per-datum", "batched"])
def test_a_failed_datum_does_not_stop_the_others(pachd_client, batching):
    """src/server/worker/datum/datum.go (Set.WithDatum / Datum.finish / handleFailed: a failed
    datum is counted and its meta uploaded, the datum set goes on) and
    src/server/worker/pipeline/transform/worker.go (handleDatumSetBatching: the user code is
    restarted after a failed datum and the batch goes on), registry.go (processDatums: after all
    datum sets, stats.FailedId -> failJob("datum <id> failed")), src/internal/ppsutil/util.go
    (FinishJob: output and meta commits finished with the reason as their error). With one worker
    and two failing datums, every datum runs: 4 processed, 2 failed, and the errored output commit
    holds what the processed datums wrote."""
    data, name = create_repo(pachd_client, "data"), unique_name("onfail")
    if batching:
        body = FAIL_ON_BOOM.format(repo=data, exit="os._exit(3)")  # the user process dies
        code = (
            "import os, sys\nfrom pachyderm_sdk import batch_all_datums\n@batch_all_datums\ndef main():\n"
            + "".join("    " + line + "\n" for line in body.splitlines())
            + "main()\n"
        )
        transform = {"cmd": [PY, "-c", code], "datumBatching": True}
    else:
        transform = {"cmd": [PY, "-c", FAIL_ON_BOOM.format(repo=data, exit="sys.exit(3)")]}
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, [], transform=transform, datum_tries=1,
        parallelism_spec={"constant": 1},
    )  # fmt: skip
    files = {f"/{n}": n.encode() for n in ("a", "b", "boom1", "c", "boom2", "d")}
    commit = put(pachd_client, data, files)
    info = job(pachd_client, name, commit.id)
    assert info.state == pps.JobState.JOB_FAILURE, info.reason
    counts = (info.data_total, info.data_processed, info.data_failed, info.data_skipped, info.data_recovered)
    assert counts == (6, 4, 2, 0, 0), counts
    datums = list(pachd_client.pps.list_datum(job=info.job))
    failed = {d.datum.id for d in datums if d.state == pps.DatumState.FAILED}
    assert len(failed) == 2 and sum(d.state == pps.DatumState.SUCCESS for d in datums) == 4
    assert any(info.reason.startswith(f"datum {i} failed") for i in failed), info.reason
    out = pachd_client.pfs.inspect_commit(
        commit=pfs.Commit.from_uri(f"{name}@{commit.id}"), wait=pfs.CommitState.FINISHED
    )
    assert out.error == info.reason
    assert _paths(pachd_client, out.commit, "/") == ["/a", "/b", "/c", "/d"]
    meta = pachd_client.pfs.inspect_commit(
        commit=_meta_commit(name, commit.id), wait=pfs.CommitState.FINISHED
    )
    assert meta.error == info.reason
    for datum_id in failed:
        record = json.loads(_get(pachd_client, meta.commit, f"/meta/{datum_id}/meta"))
        assert record["state"] == "FAILED" and record["reason"], record


def test_job_is_finishing_while_its_output_commit_is_finished(pachd_client):
    """src/server/worker/pipeline/transform/registry.go (succeedJob -> ppsutil.FinishJob with
    JOB_FINISHING: the output and meta commits are finished) and
    src/server/pps/server/transaction_defer.go (JobFinisher: a FINISHING job becomes JOB_SUCCESS
    once its output commit is finished). InspectJob shows RUNNING, then FINISHING, then SUCCESS;
    the output commit was FINISHING before FINISHED. (pachd's SubscribeJob sends each job once,
    api_server.go, so it is not the place to watch states.) 300 datums make writing their meta
    long enough (a tenth of a second or so) to be seen by polling."""
    data, name = create_repo(pachd_client, "data"), unique_name("finishing")
    code = "from pachyderm_sdk import batch_all_datums\n@batch_all_datums\ndef main():\n    pass\nmain()\n"
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, [],
        transform={"cmd": [PY, "-c", code], "datumBatching": True},
    )  # fmt: skip
    commit = put(pachd_client, data, {f"/f{i:03d}": str(i).encode() for i in range(300)})
    job_msg = pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)
    states: list[pps.JobState] = []
    deadline = time.monotonic() + 120
    while not states or states[-1] not in (pps.JobState.JOB_SUCCESS, pps.JobState.JOB_FAILURE):
        assert time.monotonic() < deadline, states
        state = pachd_client.pps.inspect_job(job=job_msg).state
        if not states or states[-1] != state:
            states.append(state)
    assert states[-3:] == [pps.JobState.JOB_RUNNING, pps.JobState.JOB_FINISHING, pps.JobState.JOB_SUCCESS], (
        states
    )
    out = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{name}@{commit.id}"))
    assert out.finishing is not None and out.finished is not None and out.finishing < out.finished


def test_datum_meta_is_written_to_the_meta_repo(pachd_client):
    """src/server/worker/datum/datum.go (uploadMetaFile: protojson datum.Meta at
    common.MetaFilePath = meta/<datum id>/meta; uploadMetaOutput/upload: the datum's directory,
    i.e. pfs/<datum id>/<input name>/... and pfs/<datum id>/out/...), src/server/worker/common/common.go
    (MetaPrefix, PFSPrefix, OutputPrefix), src/server/worker/pipeline/transform/worker.go
    (processCreateSerialDatumsTask: a skipped datum keeps its parent's meta). The pipeline's meta
    commit lists and serves it through the ordinary PFS calls."""
    data, name = create_repo(pachd_client, "data"), unique_name("meta")
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}},
        ["sh", "-c", f"for f in /pfs/{data}/*; do cp $f /pfs/out/$(basename $f).out; done"],
    )  # fmt: skip
    first = put(pachd_client, data, {"/a.txt": b"A", "/b.txt": b"B"})
    assert job(pachd_client, name, first.id).state == pps.JobState.JOB_SUCCESS
    second = put(pachd_client, data, {"/c.txt": b"C"})
    info = job(pachd_client, name, second.id)
    assert (info.state, info.data_processed, info.data_skipped) == (pps.JobState.JOB_SUCCESS, 1, 2)

    meta = _meta_commit(name, second.id)
    assert _paths(pachd_client, meta, "/") == ["/meta/", "/pfs/"]
    ids = {d.datum.id: d for d in pachd_client.pps.list_datum(job=info.job)}
    assert _paths(pachd_client, meta, "/meta/") == sorted(f"/meta/{i}/" for i in ids)
    by_path = {}
    for datum_id in ids:
        record = json.loads(_get(pachd_client, meta, f"/meta/{datum_id}/meta"))
        assert "state" not in record  # PROCESSED: protojson leaves the zero value out
        assert len(record["hash"]) == 64 and record["job"]["pipeline"]["name"] == name
        (inp,) = record["inputs"]
        assert inp["name"] == data and inp["branch"] == "master"
        assert inp["fileInfo"]["file"]["commit"]["repo"]["name"] == data
        path = inp["fileInfo"]["file"]["path"]
        by_path[path] = (datum_id, record["job"]["id"])
        assert [f.file.path for f in pachd_client.pfs.walk_file(file=pfs.File(commit=meta, path=f"/pfs/{datum_id}/"))
                if f.file_type == pfs.FileType.FILE] == [f"/pfs/{datum_id}/{data}{path}", f"/pfs/{datum_id}/out{path}.out"]  # fmt: skip
        assert _get(pachd_client, meta, f"/pfs/{datum_id}/out{path}.out") == path[1:2].upper().encode()
    # the new datum is this job's; the skipped ones keep the meta of the job that processed them
    assert {p: job_id for p, (_i, job_id) in by_path.items()} == {
        "/a.txt": first.id, "/b.txt": first.id, "/c.txt": second.id
    }  # fmt: skip
    assert pachd_client.pfs.inspect_commit(commit=meta).finished is not None
