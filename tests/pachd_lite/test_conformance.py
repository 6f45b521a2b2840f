"""Conformance: the unmodified SDK against pachd-lite, asserting what pachd 2.12 answers.

Each test names the pachd source (pachyderm/pachyderm, 2.12) whose behaviour it pins.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import betterproto
import grpc
import pytest
from pachyderm_sdk.api import auth, pfs, pps
from pachyderm_sdk.errors import AuthServiceNotActivated

from pachd_lite.pps.datums import Match, compute_datums
from pachd_lite.pps.spec import apply_defaults, parse_create_pipeline_request
from tests.fixtures.pachd import unique_name
from tests.pachd_lite.sdk_helpers import PY, code_of, create_pipeline, create_repo, job, put, read


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


def test_restart_datum_with_a_filter_matching_no_running_datum(pachd_client):
    """src/server/pps/server/api_server.go (RestartDatum), src/server/worker/server/client.go
    (Cancel) and src/server/worker/pipeline/transform/status.go (Status.Cancel only sees the datum
    running now): no running datum of the job matches -> a plain error (UNKNOWN) naming filter and
    job, also when a finished datum of the job matches."""
    data, name = create_repo(pachd_client, "data"), unique_name("restart")
    create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, ["sh", "-c", "true"])
    commit = put(pachd_client, data, {"/a": b"a", "/b": b"b"})
    info = job(pachd_client, name, commit.id)
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    code, msg = code_of(pachd_client.pps.restart_datum, job=info.job, data_filters=["/nope", "/x"])
    assert code == grpc.StatusCode.UNKNOWN
    assert msg == f"datum matching filter [/nope /x] could not be found for job ID {commit.id}"
    code, msg = code_of(pachd_client.pps.restart_datum, job=info.job, data_filters=["/a"])  # finished
    assert code == grpc.StatusCode.UNKNOWN
    assert msg == f"datum matching filter [/a] could not be found for job ID {commit.id}"


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
    _wait_for(marker.exists, "the user code to start")
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


# --- cron and CreateDatum ---


def _create_datum_batches(
    client, input_spec: pps.Input, first: int, then: list[int]
) -> list[list[pps.DatumInfo]]:
    """The SDK's generate_datums (CreateDatum): the first batch, then one batch per `then` size."""
    stream = client.pps.generate_datums(input_spec=input_spec, batch_size=first)
    batches = [next(stream)]
    for size in then:
        batches.append(stream.send(size))
    return batches


def test_create_datum_streams_a_pfs_input_in_batches(pachd_client):
    """src/server/pps/server/api_server.go (CreateDatum): `start.number` datums first, then
    `continue_.number` per request, state UNKNOWN; the stream ends after the last datum; the same
    datums (ids, files) as ListDatum's dry run of the input."""
    data = create_repo(pachd_client, "data")
    put(pachd_client, data, {f"/f{i}": str(i).encode() for i in range(5)})
    spec = pps.Input(pfs=pps.PfsInput(repo=data, glob="/*"))
    batches = _create_datum_batches(pachd_client, spec, 2, [1])
    assert [len(b) for b in batches] == [2, 1]
    stream = pachd_client.pps.generate_datums(input_spec=spec, batch_size=2)
    streamed = [*next(stream), *stream.send(2), *stream.send(5)]
    with pytest.raises(StopIteration):  # every datum sent: pachd ends the stream
        stream.send(1)
    listed = list(pachd_client.pps.list_datum(input=spec))
    assert [d.datum.id for d in streamed] == [d.datum.id for d in listed]
    assert [d.datum.id for d in batches[0] + batches[1]] == [d.datum.id for d in listed[:3]]
    assert [f.file.path for d in streamed for f in d.data] == [f"/f{i}" for i in range(5)]
    assert {d.state for d in streamed} == {pps.DatumState.UNKNOWN}
    assert {f.file.commit.repo.name for d in streamed for f in d.data} == {data}


def test_create_datum_cross_and_join(pachd_client):
    """src/server/pps/server/api_server.go (CreateDatum -> datum.NewStreamingDatumIterator) and
    src/server/worker/datum/create_stream.go: cross = every pair; join = the files whose
    join_on keys match."""
    left, right = create_repo(pachd_client, "left"), create_repo(pachd_client, "right")
    put(pachd_client, left, {"/a-1": b"1", "/b-2": b"2"})
    put(pachd_client, right, {"/x-1": b"1", "/y-3": b"3"})
    cross = pps.Input(cross=[pps.Input(pfs=pps.PfsInput(repo=r, glob="/*")) for r in (left, right)])
    start = pps.CreateDatumRequest(start=pps.StartCreateDatumRequest(input=cross, number=0))
    datums = list(pachd_client.pps.create_datum(iter([start])))  # number 0: pachd's default batch (100)
    pairs = sorted(tuple(f.file.path for f in d.data) for d in datums)
    assert pairs == [("/a-1", "/x-1"), ("/a-1", "/y-3"), ("/b-2", "/x-1"), ("/b-2", "/y-3")]
    join = pps.Input(
        join=[
            pps.Input(pfs=pps.PfsInput(repo=left, glob="/*-(*)", join_on="$1")),
            pps.Input(pfs=pps.PfsInput(repo=right, glob="/*-(*)", join_on="$1")),
        ]
    )
    datums = next(pachd_client.pps.generate_datums(input_spec=join, batch_size=10))
    assert [[(f.file.commit.repo.name, f.file.path) for f in d.data] for d in datums] == [
        [(left, "/a-1"), (right, "/x-1")]
    ]


def test_create_datum_errors(pachd_client):
    """src/server/pps/server/api_server.go (CreateDatum, getStreamingIterator): a first message
    that is not `start` or has no input, and a cron input, are plain errors (UNKNOWN) with pachd's
    text; a missing input repo is NOT_FOUND (InspectCommit)."""

    def call(*requests):
        return code_of(pachd_client.pps.create_datum, iter(requests))

    code, msg = call(pps.CreateDatumRequest(continue_=pps.ContinueCreateDatumRequest(number=1)))
    assert (code, msg) == (grpc.StatusCode.UNKNOWN, "first message must be a StartCreateDatumRequest message")
    code, msg = call(pps.CreateDatumRequest(start=pps.StartCreateDatumRequest(number=1)))
    assert (code, msg) == (grpc.StatusCode.UNKNOWN, "first message must specify an input")
    cron = pps.Input(cron=pps.CronInput(name="tick", spec="@every 1h"))
    code, msg = call(pps.CreateDatumRequest(start=pps.StartCreateDatumRequest(input=cron)))
    assert code == grpc.StatusCode.UNKNOWN
    assert (
        "can't create datums with a cron input, there will be no datums until the pipeline is created" in msg
    )
    missing = pps.Input(pfs=pps.PfsInput(repo=unique_name("nope"), glob="/*"))
    code, msg = call(pps.CreateDatumRequest(start=pps.StartCreateDatumRequest(input=missing)))
    assert code == grpc.StatusCode.NOT_FOUND, msg


def _cron_pipeline(client, name: str, crons: list[dict], cmd: str = "true") -> None:
    inputs = [{"cron": c} for c in crons]
    input_ = inputs[0] if len(inputs) == 1 else {"cross": inputs}
    create_pipeline(client, name, input_, ["sh", "-c", cmd])


def _tick_files(client, repo: str, commit: str = "master") -> list[str]:
    return [i.file.path for i in client.pfs.list_file(file=pfs.File.from_uri(f"{repo}@{commit}:/"))]


def _gaps(tick_files: list[str]) -> list[float]:
    """Seconds between consecutive tick files ("/2024-01-02T03:04:05Z")."""
    stamps = [datetime.fromisoformat(p[1:].replace("Z", "+00:00")) for p in tick_files]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]


def test_run_cron_without_a_cron_input(pachd_client):
    """src/server/pps/server/api_server.go (RunCron): a pipeline without a cron input -> plain
    error (UNKNOWN) "pipeline doesn't have a cron input"; a missing pipeline -> NOT_FOUND."""
    data, name = create_repo(pachd_client, "data"), unique_name("nocron")
    create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, ["sh", "-c", "true"])
    code, msg = code_of(pachd_client.pps.run_cron, pipeline=pps.Pipeline(name=name))
    assert (code, msg) == (grpc.StatusCode.UNKNOWN, "pipeline doesn't have a cron input")
    code, _ = code_of(pachd_client.pps.run_cron, pipeline=pps.Pipeline(name=unique_name("missing")))
    assert code == grpc.StatusCode.NOT_FOUND


def test_cron_input_repo_and_run_cron_ticks(pachd_client):
    """src/server/pps/server/api_server.go (setInputDefaults: repo `<pipeline>_<name>`, start = now;
    CreatePipeline creates the repo "Cron tick repo for pipeline <project>/<name>."; RunCron) and
    src/server/pps/server/monitor.go (cronTick: one commit, an empty file named by the time in
    RFC 3339; with overwrite the earlier files are deleted in the same commit). The tick commit
    triggers a job that sees the tick file under /pfs/<input name>."""
    name = unique_name("cron")
    _cron_pipeline(
        pachd_client,
        name,
        [{"name": "keep", "spec": "@never"}, {"name": "last", "spec": "@never", "overwrite": True}],
        'touch "/pfs/out/$(basename $keep)+$(basename $last)"',
    )
    try:
        keep, last = f"{name}_keep", f"{name}_last"
        info = pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name), details=True)
        assert [c.cron.repo for c in info.details.input.cross] == [keep, last]
        assert all(c.cron.start.year >= 2024 for c in info.details.input.cross)
        repo = pachd_client.pfs.inspect_repo(repo=pfs.Repo.from_uri(keep))
        assert repo.description == f"Cron tick repo for pipeline default/{name}."
        assert _tick_files(pachd_client, keep) == []
        before = time.time()
        pachd_client.pps.run_cron(pipeline=pps.Pipeline(name=name))
        time.sleep(1.1)  # the next tick file has another name (whole seconds)
        pachd_client.pps.run_cron(pipeline=pps.Pipeline(name=name))
        kept, overwritten = _tick_files(pachd_client, keep), _tick_files(pachd_client, last)
        assert len(kept) == 2 and overwritten == kept[1:]
        for path in kept:
            assert re.fullmatch(r"/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", path), path
            stamp = datetime.fromisoformat(path[1:].replace("Z", "+00:00")).timestamp()
            assert before - 1 <= stamp <= time.time()
        head = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{last}@master"))
        done = job(pachd_client, name, head.commit.id)
        assert done.state == pps.JobState.JOB_SUCCESS, done.reason
        outputs = [
            i.file.path for i in pachd_client.pfs.list_file(file=pfs.File.from_uri(f"{name}@master:/"))
        ]
        assert outputs == [f"{k}+{kept[1][1:]}" for k in kept]  # cross: each kept tick with the last one
    finally:
        pachd_client.pps.delete_pipeline(pipeline=pps.Pipeline(name=name), force=True)
    assert not pachd_client.pfs.repo_exists(pfs.Repo.from_uri(f"{name}_keep"))  # deleted with it


def test_cron_input_ticks_on_its_schedule(pachd_client):
    """src/server/pps/server/monitor.go (makeCronCommits: each tick at schedule.Next(latest), one
    commit per tick, each starting a job) and src/internal/cronutil/cronutil.go (robfig/cron's
    ParseStandard: `@every <duration>`): an `@every 1s` input ticks once a second on its own."""
    name = unique_name("every")
    _cron_pipeline(pachd_client, name, [{"name": "tick", "spec": "@every 1s"}])
    try:
        _wait_for(lambda: len(_tick_files(pachd_client, f"{name}_tick")) >= 3, "3 ticks", seconds=15)
    finally:
        pachd_client.pps.stop_pipeline(pipeline=pps.Pipeline(name=name))
    try:
        files = _tick_files(pachd_client, f"{name}_tick")
        assert _gaps(files) == [1.0] * (len(files) - 1)  # one tick per second, none skipped
        jobs = list(pachd_client.pps.list_job(pipeline=pps.Pipeline(name=name)))
        assert len(jobs) >= 3  # the creation's job plus one per tick (at least the first two)
    finally:
        pachd_client.pps.delete_pipeline(pipeline=pps.Pipeline(name=name), force=True)


def test_cron_start_in_the_future_makes_no_tick_yet(pachd_client):
    """src/server/pps/server/monitor.go (getLatestCronTime: no tick file -> `start`; the first
    tick is schedule.Next(start)): with `start` an hour ahead an `@every 1s` input does not tick."""
    name = unique_name("later")
    start = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _cron_pipeline(pachd_client, name, [{"name": "tick", "spec": "@every 1s", "start": start}])
    try:
        time.sleep(2.5)
        assert _tick_files(pachd_client, f"{name}_tick") == []
    finally:
        pachd_client.pps.delete_pipeline(pipeline=pps.Pipeline(name=name), force=True)


def test_cron_bad_spec_is_refused(pachd_client):
    """src/server/pps/server/api_server.go (validateInput: cronutil.ParseCronExpression ->
    "error parsing cron-spec"); robfig/cron v1 ParseStandard wants exactly 5 fields."""
    for spec in ("* * * *", "@every soon", "@fortnightly", "0 0 L * *"):
        code, msg = code_of(
            create_pipeline, pachd_client, unique_name("bad"), {"cron": {"name": "t", "spec": spec}}, ["true"]
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "error parsing cron-spec" in msg, (
            spec,
            code,
            msg,
        )


def test_cron_ticks_survive_a_restart_without_repeats(pachd_factory):
    """src/server/pps/server/monitor.go (getLatestCronTime: after a restart the schedule goes on
    from the newest tick file; makeCronCommits makes each missed tick, one commit each): no tick
    is repeated and none is skipped across a restart."""
    server = pachd_factory()
    client = server.client()
    name = unique_name("restart")
    _cron_pipeline(client, name, [{"name": "tick", "spec": "@every 1s"}])
    repo = f"{name}_tick"
    _wait_for(lambda: len(_tick_files(client, repo)) >= 2, "ticks before the restart", seconds=15)
    server.restart()
    client = server.client()
    count = len(_tick_files(client, repo))
    _wait_for(lambda: len(_tick_files(client, repo)) >= count + 2, "ticks after the restart", seconds=15)
    client.pps.stop_pipeline(pipeline=pps.Pipeline(name=name))
    time.sleep(1)  # a tick pass that began before the stop has ended
    files = _tick_files(client, repo)
    assert _gaps(files) == [1.0] * (len(files) - 1)  # one tick per second, none skipped
    counts = [
        len(_tick_files(client, repo, c.commit.id))
        for c in client.pfs.list_commit(repo=pfs.Repo.from_uri(repo))
    ]
    counts = sorted(n for n in counts if n)  # the branch's first commit is empty
    assert counts == list(range(1, len(files) + 1))  # each tick commit added one file: none made twice


# --- branch triggers ---
def _finished(client, repo: str, files: dict[str, bytes], branch: str = "master") -> str:
    """Commit ``files`` to ``branch`` and wait until the commit is finished (pachd triggers fire then)."""
    commit = put(client, repo, files, branch)
    client.pfs.inspect_commit(
        commit=pfs.Commit.from_uri(f"{repo}@{commit.id}"), wait=pfs.CommitState.FINISHED
    )
    return commit.id


def _head(client, repo: str, branch: str) -> str:
    return client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{repo}@{branch}")).head.id


def _trigger_branch(client, repo: str, name: str, **trigger) -> str:
    """Create branch ``name`` with ``trigger``; return its initial (empty) head."""
    client.pfs.create_branch(branch=pfs.Branch.from_uri(f"{repo}@{name}"), trigger=pfs.Trigger(**trigger))
    return _head(client, repo, name)


def test_trigger_size_counts_bytes_added_since_the_triggered_head(pachd_client):
    """src/server/pfs/server/master_trigger.go (isTriggered: newHead size - oldHead size >= size, the size
    parsed by go-units FromHumanSize, decimal: "1KiB" is 1000 bytes); checked in triggerCommit when a
    commit finishes."""
    repo = create_repo(pachd_client, "trig")
    first = _trigger_branch(pachd_client, repo, "staging", branch="master", size="1KiB")
    _finished(pachd_client, repo, {"/a": b"x" * 999})
    assert _head(pachd_client, repo, "staging") == first  # 999 bytes since the head
    second = _finished(pachd_client, repo, {"/b": b"x"})
    assert _head(pachd_client, repo, "staging") == second  # 1000 bytes
    _finished(pachd_client, repo, {"/c": b"x" * 999})
    assert _head(pachd_client, repo, "staging") == second  # 999 more since the moved head
    info = pachd_client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{repo}@staging"))
    assert (info.trigger.branch, info.trigger.size) == ("master", "1KiB")


def test_trigger_commits_counts_commits_since_the_triggered_head(pachd_client):
    """src/server/pfs/server/master_trigger.go (isTriggered: walk parents from the new head to the
    triggered branch's head, fire when exactly `commits` were passed)."""
    repo = create_repo(pachd_client, "trig")
    first = _trigger_branch(pachd_client, repo, "staging", branch="master", commits=2)
    _finished(pachd_client, repo, {"/1": b"1"})
    assert _head(pachd_client, repo, "staging") == first
    second = _finished(pachd_client, repo, {"/2": b"2"})
    assert _head(pachd_client, repo, "staging") == second
    _finished(pachd_client, repo, {"/3": b"3"})
    assert _head(pachd_client, repo, "staging") == second
    fourth = _finished(pachd_client, repo, {"/4": b"4"})
    assert _head(pachd_client, repo, "staging") == fourth
    assert read(pachd_client, f"{repo}@staging:/4") == b"4"


def test_trigger_all_needs_every_condition_otherwise_any(pachd_client):
    """src/server/pfs/server/master_trigger.go (isTriggered: `all` ANDs the set conditions, else ORs)."""
    repo = create_repo(pachd_client, "trig")
    all_head = _trigger_branch(pachd_client, repo, "both", branch="master", size="1K", commits=2, all=True)
    _trigger_branch(pachd_client, repo, "either", branch="master", size="1K", commits=2)
    big = _finished(pachd_client, repo, {"/big": b"x" * 2000})
    assert _head(pachd_client, repo, "either") == big  # size alone is enough
    assert _head(pachd_client, repo, "both") == all_head  # one commit of two
    small = _finished(pachd_client, repo, {"/small": b"x"})
    assert _head(pachd_client, repo, "both") == small
    assert _head(pachd_client, repo, "either") == big  # 1 byte and 1 commit since it moved


def test_trigger_rate_limit_spec_waits_for_a_tick_after_the_head_finished(pachd_client):
    """src/server/pfs/server/master_trigger.go (isTriggered: the rate-limit schedule's next tick after
    the triggered head's finishing time is before the new head's finishing time)."""
    repo = create_repo(pachd_client, "trig")
    created = time.monotonic()
    first = _trigger_branch(pachd_client, repo, "staging", branch="master", rate_limit_spec="@every 3s")
    _finished(pachd_client, repo, {"/a": b"a"})
    assert _head(pachd_client, repo, "staging") == first
    time.sleep(max(0.0, 3.2 - (time.monotonic() - created)))
    later = _finished(pachd_client, repo, {"/b": b"b"})
    assert _head(pachd_client, repo, "staging") == later


def test_trigger_cron_spec_moves_the_head_on_its_ticks_not_on_commits(pachd_client):
    """src/server/pfs/server/master.go (manageBranch/runCronTrigger: at each tick the branch's head
    becomes the source branch's head) and master_trigger.go (triggerCommit skips cron triggers, even
    with other conditions set)."""
    repo = create_repo(pachd_client, "trig")
    first = _finished(pachd_client, repo, {"/a": b"a"})
    frozen = _trigger_branch(pachd_client, repo, "frozen", branch="master", cron_spec="@never", commits=1)
    _trigger_branch(pachd_client, repo, "ticking", branch="master", cron_spec="@every 1s")
    deadline = time.monotonic() + 10
    while _head(pachd_client, repo, "ticking") != first:
        assert time.monotonic() < deadline, "the cron trigger never moved the head"
        time.sleep(0.1)
    second = _finished(pachd_client, repo, {"/b": b"b"})
    assert _head(pachd_client, repo, "frozen") == frozen
    while _head(pachd_client, repo, "ticking") != second:
        assert time.monotonic() < deadline, "the cron trigger never moved the head again"
        time.sleep(0.1)


def test_trigger_chains_fire_in_one_finish_and_not_at_create(pachd_client):
    """src/server/pfs/server/master_trigger.go (triggerCommit recurses through the trigger chain, earlier
    triggers first) and server_branch.go (createBranch gives a new triggered branch an empty head and
    does not evaluate the trigger)."""
    repo = create_repo(pachd_client, "trig")
    first = _finished(pachd_client, repo, {"/a": b"x" * 2000})
    staging = _trigger_branch(pachd_client, repo, "staging", branch="master", size="1K")
    assert staging != first  # not evaluated at create, though master holds 2000 bytes
    assert list(pachd_client.pfs.list_file(file=pfs.File.from_uri(f"{repo}@staging:/"))) == []
    prod = _trigger_branch(pachd_client, repo, "prod", branch="staging", commits=2)
    second = _finished(pachd_client, repo, {"/b": b"b"})
    assert _head(pachd_client, repo, "staging") == second  # 2001 bytes since its empty head
    assert _head(pachd_client, repo, "prod") == second  # then prod, from staging's new head: 2 commits
    assert prod != second


def test_pipeline_reading_a_triggered_branch_runs_only_when_it_fires(pachd_client):
    """src/server/pfs/server/master_trigger.go (a fired trigger calls PropagateBranch on the triggered
    branch, so pipelines reading it get a job; an unfired one moves nothing)."""
    data, name = create_repo(pachd_client, "trig"), unique_name("trigpipe")
    _trigger_branch(pachd_client, data, "staging", branch="master", commits=2)
    create_pipeline(
        pachd_client,
        name,
        {"pfs": {"repo": data, "branch": "staging", "glob": "/*"}},
        ["sh", "-c", "cp /pfs/*/* /pfs/out/"],
    )
    pipeline = pps.Pipeline(name=name)

    def jobs() -> list[pps.JobInfo]:
        found = list(pachd_client.pps.list_job(pipeline=pipeline))
        for info in found:
            pachd_client.pps.inspect_job(job=info.job, wait=True)
        return found

    before = {j.job.id for j in jobs()}
    _finished(pachd_client, data, {"/a": b"a"})
    assert {j.job.id for j in jobs()} == before
    second = _finished(pachd_client, data, {"/b": b"b"})
    new = [j for j in jobs() if j.job.id not in before]
    assert len(new) == 1
    info = pachd_client.pps.inspect_job(job=new[0].job, wait=True)
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    assert _head(pachd_client, data, "staging") == second
    assert read(pachd_client, f"{name}@master:/a") == b"a"
    assert read(pachd_client, f"{name}@master:/b") == b"b"


@pytest.mark.parametrize(
    ("branch", "trigger", "message"),
    [
        ("staging", {"size": "1K"}, "triggers must specify a branch to trigger on"),
        ("staging", {"branch": "staging"}, "triggers cannot form a loop"),
        ("master", {"branch": "loop"}, "triggers cannot form a loop"),  # loop <- master exists
        ("staging", {"branch": "master", "size": "1X"}, "invalid trigger size: invalid suffix: 'x'"),
        ("staging", {"branch": "master", "size": "MB"}, "invalid trigger size: invalid size: 'MB'"),
        ("staging", {"branch": "master", "commits": -1}, "can't trigger on a negative number of commits"),
        ("staging", {"branch": "master", "cron_spec": "* * *"},
         "invalid trigger cron spec: Expected exactly 5 fields, found 3: * * *"),
        ("staging", {"branch": "master", "rate_limit_spec": "@often"},
         "invalid trigger rate limit spec: Unrecognized descriptor: @often"),
    ],
    ids=["no-branch", "self", "chain-loop", "bad-suffix", "no-number", "negative-commits", "cron", "rate-limit"],
)  # fmt: skip
def test_trigger_validation(pachd_client, branch, trigger, message):
    """src/server/pfs/server/server_branch.go (validateTrigger; plain errors, so UNKNOWN)."""
    repo = create_repo(pachd_client, "trig")
    _trigger_branch(pachd_client, repo, "loop", branch="master")
    code, msg = code_of(
        pachd_client.pfs.create_branch,
        branch=pfs.Branch.from_uri(f"{repo}@{branch}"),
        trigger=pfs.Trigger(**trigger),
    )
    assert (code, msg) == (grpc.StatusCode.UNKNOWN, message)


def test_trigger_with_provenance_is_refused_and_a_missing_source_is_not(pachd_client):
    """src/server/pfs/server/server_branch.go (createBranch: "a branch cannot have both provenance and a
    trigger"; validateTrigger does not require the source branch to exist) and master_trigger.go (the
    trigger fires once the source branch has a finished commit); CreateBranch without a trigger keeps it."""
    repo, other = create_repo(pachd_client, "trig"), create_repo(pachd_client, "prov")
    code, msg = code_of(
        pachd_client.pfs.create_branch,
        branch=pfs.Branch.from_uri(f"{repo}@out"),
        provenance=[pfs.Branch.from_uri(f"{other}@master")],
        trigger=pfs.Trigger(branch="master"),
    )
    assert (code, msg) == (grpc.StatusCode.UNKNOWN, "a branch cannot have both provenance and a trigger")
    _trigger_branch(pachd_client, repo, "staging", branch="later", commits=1)
    pachd_client.pfs.create_branch(branch=pfs.Branch.from_uri(f"{repo}@staging"))  # no trigger: kept
    later = _finished(pachd_client, repo, {"/a": b"a"}, branch="later")
    assert _head(pachd_client, repo, "staging") == later
    info = pachd_client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{repo}@staging"))
    assert (info.trigger.branch, info.trigger.commits) == ("later", 1)


def test_trigger_ignores_a_commit_finished_with_an_error(pachd_client):
    """src/server/pfs/server/master.go (finishCommit calls triggerCommit only when the commit has no error)."""
    repo = create_repo(pachd_client, "trig")
    first = _trigger_branch(pachd_client, repo, "staging", branch="master", commits=1)
    bad = pachd_client.pfs.start_commit(branch=pfs.Branch.from_uri(f"{repo}@master"))
    pachd_client.pfs.put_file_from_bytes(commit=bad, path="/a", data=b"a")
    pachd_client.pfs.finish_commit(commit=bad, error="bad input")
    pachd_client.pfs.inspect_commit(commit=bad, wait=pfs.CommitState.FINISHED)
    assert _head(pachd_client, repo, "staging") == first
    good = _finished(pachd_client, repo, {"/b": b"b"})
    assert _head(pachd_client, repo, "staging") == good


# --- worker logs and RestartDatum ---

WORKER_TASK = ["started process datum set task", "finished process datum set task"]
FINISHED = re.compile(r"^finished running user code after [0-9.]+(ns|µs|ms|s)$")
CANCELED = re.compile(
    r"^errored running user code after [0-9.]+(ns|µs|ms|s): signal: killed because context canceled$"
)


def _collect(stream) -> tuple[list, threading.Thread]:
    """The messages of a stream that does not end by itself (a followed log, a subscription),
    collected by a thread until the call is cancelled or its channel closed."""
    got: list = []

    def collect() -> None:
        with contextlib.suppress(grpc.RpcError):
            got.extend(stream)

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    return got, thread


def _wait_for(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _restart_sleeping_datum_a(client, pipeline: str, commit: pfs.Commit, marker: Path):
    """Once datum /a's first try has started (it touches ``marker``, then sleeps 60 s), restart it;
    the job must end well before that sleep would: the try was interrupted, not waited for."""
    job_ref = pps.Job(pipeline=pps.Pipeline(name=pipeline), id=commit.id)
    _wait_for(marker.exists, "the first try of /a to start")
    started = time.monotonic()
    client.pps.restart_datum(job=job_ref, data_filters=["/a"])
    info = job(client, pipeline, commit.id)
    assert time.monotonic() - started < 30
    return job_ref, info


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
    got, thread = _collect(follower.pps.get_logs(job=job_ref, follow=True))
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
    job_ref, info = _restart_sleeping_datum_a(pachd_client, name, commit, marker)
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
    api_server.go, so it is not the place to watch states.) 1,000 datums make finishing long
    enough to be seen by polling: 35-45 ms here (300 gave 10-15 ms, missed by one poll in 15)."""
    data, name = create_repo(pachd_client, "data"), unique_name("finishing")
    code = "from pachyderm_sdk import batch_all_datums\n@batch_all_datums\ndef main():\n    pass\nmain()\n"
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, [],
        transform={"cmd": [PY, "-c", code], "datumBatching": True},
    )  # fmt: skip
    commit = put(pachd_client, data, {f"/f{i:04d}": str(i).encode() for i in range(1000)})
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


# --- RestartDatum, ListDatum, SubscribeJob ---
CRON_LIST = "can't list datums with a cron input, there will be no datums until the pipeline is created"


def test_list_datum_refuses_an_input_with_a_cron_input(pachd_client):
    """src/server/pps/server/api_server.go (ListDatum: job and input together are refused;
    listDatumInput: any cron input in the spec, also under a cross, is a plain error (UNKNOWN) -
    its datums exist only once the pipeline ticks). A job's datums are listed as usual."""
    data = create_repo(pachd_client, "data")
    put(pachd_client, data, {"/a": b"a"})
    cron = pps.Input(cron=pps.CronInput(name="tick", spec="@every 1h"))
    crossed = pps.Input(cross=[pps.Input(pfs=pps.PfsInput(repo=data, glob="/*")), cron])
    for spec in (cron, crossed):
        assert code_of(pachd_client.pps.list_datum, input=spec) == (grpc.StatusCode.UNKNOWN, CRON_LIST)
    plain = pps.Input(pfs=pps.PfsInput(repo=data, glob="/*"))
    assert [d.data[0].file.path for d in pachd_client.pps.list_datum(input=plain)] == ["/a"]
    some_job = pps.Job(pipeline=pps.Pipeline(name=unique_name("any")), id="0" * 32)
    code, msg = code_of(pachd_client.pps.list_datum, job=some_job, input=plain)
    assert (code, msg) == (grpc.StatusCode.UNKNOWN, "cannot specify both job and input")


def test_subscribe_job_sends_each_unfinished_job_once(pachd_server, pachd_client, tmp_path):
    """src/server/pps/server/api_server.go (SubscribeJob: watches the pipeline's jobs in
    JobsTerminalIndex with terminal=false and keeps a `seen` set, so each unfinished job is sent
    once - not again on RUNNING, FINISHING or SUCCESS - and finished jobs are not sent; an empty
    pipeline name is "pipeline must be specified")."""
    data, name = create_repo(pachd_client, "data"), unique_name("subjob")
    gate = tmp_path / "gate"
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}},
        ["sh", "-c", f"while [ -e {gate} ]; do sleep 0.05; done; cp /pfs/{data}/* /pfs/out/"],
    )  # fmt: skip
    done_before = put(pachd_client, data, {"/a": b"a"})
    assert job(pachd_client, name, done_before.id).state == pps.JobState.JOB_SUCCESS
    gate.touch()
    with grpc.insecure_channel(f"{pachd_server.connect_host}:{pachd_server.port}") as channel:
        subscribe = channel.unary_stream(
            "/pps_v2.API/SubscribeJob", request_serializer=bytes, response_deserializer=pps.JobInfo.FromString
        )
        call = subscribe(pps.SubscribeJobRequest(pipeline=pps.Pipeline(name=name)))
        got, reader = _collect(call)
        gated = put(pachd_client, data, {"/b": b"b"})
        _wait_for(lambda: got, "the unfinished job to be sent")
        gate.unlink()
        assert job(pachd_client, name, gated.id).state == pps.JobState.JOB_SUCCESS
        time.sleep(1.5)  # room for (wrong) updates on RUNNING/FINISHING/SUCCESS
        call.cancel()
        reader.join(10)
    assert [j.job.id for j in got] == [gated.id]
    assert got[0].state not in (pps.JobState.JOB_SUCCESS, pps.JobState.JOB_FAILURE)
    code, msg = code_of(pachd_client.pps.subscribe_job, pipeline=pps.Pipeline(name=""))
    assert (code, msg) == (grpc.StatusCode.UNKNOWN, "pipeline must be specified")


def test_restart_datum_interrupts_a_batched_datum(pachd_client, tmp_path):
    """src/server/worker/pipeline/transform/worker.go (handleDatumSetBatching: forEachDatum runs
    each datum under its own cancel, which RestartDatum's Status.Cancel (transform/status.go)
    fires; the datum's callback returns the context error, the user code is stopped and started
    again, and the datum is tried again up to datum_tries): the batch is not waited for."""
    data, name = create_repo(pachd_client, "data"), unique_name("restartb")
    marker = tmp_path / "first-try"
    code = (
        "import os, shutil, time\nfrom pathlib import Path\n"
        "from pachyderm_sdk import batch_all_datums\n@batch_all_datums\ndef main():\n"
        f"    for f in Path('/pfs/{data}').iterdir():\n"
        f"        if f.name == 'a' and not os.path.exists({str(marker)!r}):\n"
        f"            Path({str(marker)!r}).touch()\n            time.sleep(60)\n"
        "        shutil.copy(f, '/pfs/out/' + f.name)\nmain()\n"
    )
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, [],
        transform={"cmd": [PY, "-c", code], "datumBatching": True}, datumTries=2,
    )  # fmt: skip
    commit = put(pachd_client, data, {"/a": b"a", "/b": b"b"})
    job_ref, info = _restart_sleeping_datum_a(pachd_client, name, commit, marker)
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    assert {d.state for d in pachd_client.pps.list_datum(job=job_ref)} == {pps.DatumState.SUCCESS}
    assert read(pachd_client, f"{name}@master:/a") == b"a" and read(pachd_client, f"{name}@master:/b") == b"b"
