"""Pipelines on pachd-lite through the unmodified SDK: real server, real user-code subprocesses."""

from __future__ import annotations

import json

import grpc
import pytest
from pachyderm_sdk.api import metadata, pfs, pps

from tests.fixtures.pachd import unique_name
from tests.pachd_lite import is_set
from tests.pachd_lite.sdk_helpers import PY, create_pipeline, create_repo, job, put, read


def test_three_stage_chain_shares_one_commit_set(pachd_client):
    raw = create_repo(pachd_client, "raw")
    split, etl, train = unique_name("split"), unique_name("etl"), unique_name("train")
    create_pipeline(
        pachd_client, split, {"pfs": {"repo": raw, "glob": "/*"}},
        ["sh", "-c", "for f in /pfs/" + raw + "/*; do n=$(basename $f); tr a-z A-Z < $f > /pfs/out/$n; done"],
    )  # fmt: skip
    create_pipeline(
        pachd_client, etl, {"pfs": {"repo": split, "glob": "/*"}},
        [PY, "-c", "import os,glob\nfor p in glob.glob(os.environ['" + split + "'] + '*'):\n"
         "    open('/pfs/out/' + os.path.basename(p) + '.len', 'w').write(str(len(open(p).read())))"],
    )  # fmt: skip
    create_pipeline(
        pachd_client, train, {"pfs": {"repo": etl, "glob": "/"}},
        ["sh", "-c", "cat /pfs/" + etl + "/*.len > /pfs/out/model; echo trained on $PACH_JOB_ID"],
    )  # fmt: skip
    commit = put(pachd_client, raw, {"/a.txt": b"hello", "/b.txt": b"pachyderm!"})
    infos = pachd_client.pfs.wait_commit_set(pfs.CommitSet(id=commit.id))
    user_repos = {i.commit.repo.name: i for i in infos if i.commit.repo.type == "user"}
    assert set(user_repos) == {raw, split, etl, train}
    assert {i.commit.id for i in user_repos.values()} == {commit.id}
    assert all(is_set(i.finished) and not i.error for i in infos)
    assert read(pachd_client, f"{split}@master:/a.txt") == b"HELLO"
    assert read(pachd_client, f"{train}@master:/model") == b"510"
    walked = pachd_client.pfs.walk_commit_provenance(
        start=[pfs.CommitPicker.from_uri(f"{train}@{commit.id}")]
    )
    assert (raw, commit.id) in [(w.commit.repo.name, w.commit.id) for w in walked]
    for name in (split, etl, train):
        info = job(pachd_client, name, commit.id)
        assert info.state == pps.JobState.JOB_SUCCESS, info.reason
        assert info.output_commit.id == commit.id
    jobs_in_set = list(pachd_client.pps.inspect_job_set(job_set=pps.JobSet(id=commit.id), wait=True))
    assert {j.job.pipeline.name for j in jobs_in_set} == {split, etl, train}
    env_log = [m.message for m in pachd_client.pps.get_logs(pipeline=pps.Pipeline(name=train))]
    assert f"trained on {commit.id}" in env_log
    pinfo = pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=train))
    assert pinfo.state == pps.PipelineState.PIPELINE_RUNNING and pinfo.version == 1
    assert pinfo.details.output_branch == "master" and pinfo.details.salt
    branch = pachd_client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{train}@master"))
    assert {(b.repo.name, b.repo.type) for b in branch.direct_provenance} == {(etl, "user"), (train, "spec")}


def test_skipping_and_reprocess(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("copy")
    put(pachd_client, data, {f"/f{i:02d}": str(i).encode() for i in range(20)})
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, ["sh", "-c", f"cp /pfs/{data}/* /pfs/out/"]
    )
    first = pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name)).spec_commit.id
    info = job(pachd_client, name, first)
    assert (info.state, info.data_total, info.data_processed, info.data_skipped) == (
        pps.JobState.JOB_SUCCESS,
        20,
        20,
        0,
    )
    commit = put(pachd_client, data, {"/f20": b"20"})
    info = job(pachd_client, name, commit.id)
    assert (info.data_total, info.data_processed, info.data_skipped) == (21, 1, 20)
    files = [f.file.path for f in pachd_client.pfs.list_file(file=pfs.File.from_uri(f"{name}@master:/"))]
    assert len(files) == 21  # skipped datums' outputs carried forward
    datums = list(pachd_client.pps.list_datum(job=pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)))
    states = sorted(d.state for d in datums)
    assert states.count(pps.DatumState.SKIPPED) == 20 and states.count(pps.DatumState.SUCCESS) == 1
    # removing an input file removes its datum's output
    with pachd_client.pfs.commit(branch=pfs.Branch.from_uri(f"{data}@master")) as c:
        c.delete_file(path="/f00")
    info = job(pachd_client, name, c.id)
    assert (info.data_total, info.data_processed, info.data_skipped) == (20, 0, 20)
    assert not pachd_client.pfs.path_exists(pfs.File.from_uri(f"{name}@master:/f00"))
    # update with reprocess: every datum runs again under a new salt
    old_salt = pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name)).details.salt
    spec = {"pipeline": {"name": name}, "input": {"pfs": {"repo": data, "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", f"cp /pfs/{data}/* /pfs/out/"]}}  # fmt: skip
    pachd_client.pps.create_pipeline_v2(
        create_pipeline_request_json=json.dumps(spec), update=True, reprocess=True
    )
    pinfo = pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name))
    assert pinfo.version == 2 and pinfo.details.salt != old_salt
    info = job(pachd_client, name, pinfo.spec_commit.id)
    assert (info.data_total, info.data_processed, info.data_skipped) == (20, 20, 0)
    # update without reprocess keeps the salt: everything skipped
    pachd_client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec), update=True)
    pinfo = pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name))
    assert pinfo.version == 3
    info = job(pachd_client, name, pinfo.spec_commit.id)
    assert (info.data_processed, info.data_skipped) == (0, 20)


def test_failing_datum_retries_fails_job_and_makes_downstream_unrunnable(pachd_client):
    data = create_repo(pachd_client, "data")
    bad, down = unique_name("bad"), unique_name("down")
    script = (
        "import os,sys\n"
        "p = os.environ['" + data + "']\n"
        "print('processing', os.path.basename(p))\n"
        "if p.endswith('boom'):\n"
        "    print('about to fail on purpose', flush=True)\n"
        "    sys.exit(3)\n"
        "open('/pfs/out/' + os.path.basename(p), 'w').write('ok')\n"
    )
    create_pipeline(
        pachd_client, bad, {"pfs": {"repo": data, "glob": "/*"}}, [PY, "-c", script], datum_tries=2
    )
    create_pipeline(pachd_client, down, {"pfs": {"repo": bad, "glob": "/"}}, ["sh", "-c", "ls /pfs"])
    commit = put(pachd_client, data, {"/fine": b"1", "/boom": b"2"})
    info = job(pachd_client, bad, commit.id)
    assert info.state == pps.JobState.JOB_FAILURE
    assert "failed" in info.reason and "about to fail on purpose" in info.reason
    assert info.data_failed == 1
    out_commit = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{bad}@{commit.id}"))
    assert out_commit.error
    downstream = job(pachd_client, down, commit.id)
    assert downstream.state == pps.JobState.JOB_UNRUNNABLE
    assert bad in downstream.reason
    lines = [
        m.message
        for m in pachd_client.pps.get_logs(job=pps.Job(pipeline=pps.Pipeline(name=bad), id=commit.id))
    ]
    assert lines.count("about to fail on purpose") == 2  # datum_tries = 2
    assert "processing boom" in lines


def test_duplicate_output_path_fails_like_pachd(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("dup")
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, ["sh", "-c", "echo x > /pfs/out/same"]
    )
    commit = put(pachd_client, data, {"/a": b"a", "/b": b"b"})
    info = job(pachd_client, name, commit.id)
    assert info.state == pps.JobState.JOB_FAILURE
    assert "duplicate path output by different datums" in info.reason and "/same" in info.reason


def test_datum_batching_one_process_for_50_datums(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("batch")
    put(pachd_client, data, {f"/d{i:02d}": str(i).encode() for i in range(50)})
    script = (
        "import os\n"
        "from pachyderm_sdk import batch_all_datums\n"
        "@batch_all_datums\n"
        "def main():\n"
        "    p = os.environ['" + data + "']\n"
        "    open('/pfs/out/' + os.path.basename(p), 'w').write(str(os.getpid()))\n"
        "main()\n"
    )
    spec = {"transform": {"cmd": [PY, "-c", script], "datumBatching": True}}
    create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, [PY, "-c", script], **spec)
    first = pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name)).spec_commit.id
    info = job(pachd_client, name, first)
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    assert info.data_processed == 50
    tar = pachd_client.pfs.pfs_tar_file(pfs.File.from_uri(f"{name}@master:/"))
    pids = {tar.extractfile(m).read() for m in tar if m.isfile()}
    assert len(pids) == 1  # one user process handled all 50 datums


def test_pipeline_errors_and_unimplemented(pachd_client):
    data = create_repo(pachd_client, "data")
    with pytest.raises(grpc.RpcError) as err:
        pachd_client.pps.create_pipeline_v2(
            create_pipeline_request_json=json.dumps(
                {"pipeline": {"name": "x"}, "transform": {"cmdd": ["true"]}}
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "cmdd" in err.value.details()
    name = unique_name("p")
    create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/"}}, ["true"])
    with pytest.raises(grpc.RpcError) as err:
        create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/"}}, ["true"])
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as err:
        create_pipeline(
            pachd_client, unique_name("p"), {"pfs": {"repo": unique_name("missing"), "glob": "/"}}, ["true"]
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        pachd_client.pfs.delete_repo(repo=pfs.Repo.from_uri(name))
    assert (
        err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        and "delete the pipeline" in err.value.details()
    )
    with pytest.raises(grpc.RpcError) as err:
        pachd_client.pps.run_pipeline(pipeline=pps.Pipeline(name=name))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    dry = pachd_client.pps.create_pipeline_v2(
        create_pipeline_request_json=json.dumps(
            {"pipeline": {"name": unique_name("dry")}, "input": {"pfs": {"repo": data, "glob": "/"}},
             "transform": {"cmd": ["true"]}}
        ),
        dry_run=True,
    )  # fmt: skip
    assert json.loads(dry.effective_create_pipeline_request_json)["datumTries"] in ("3", 3)
    pachd_client.pps.delete_pipeline(pipeline=pps.Pipeline(name=name))
    assert not pachd_client.pps.pipeline_exists(pps.Pipeline(name=name))
    assert not pachd_client.pfs.repo_exists(pfs.Repo.from_uri(name))


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_unfinished_job_reruns_after_restart(pachd_factory, tmp_path, how):
    """kill -9 or SIGTERM while user code runs: after a restart the job runs again and succeeds."""
    server = pachd_factory()
    client = server.client()
    client.pfs.create_repo(repo=pfs.Repo.from_uri("in"))
    marker = tmp_path / "started"
    cmd = ["sh", "-c", f"touch {marker}; sleep 2; cp /pfs/in/* /pfs/out/"]
    create_pipeline(client, "slow", {"pfs": {"repo": "in", "glob": "/"}}, cmd)
    commit = put(client, "in", {"/x": b"x"})
    import time

    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the job never started"
    if how == "kill":
        server.kill()
    else:
        server.stop()
    server.restart()
    client = server.client()
    info = job(client, "slow", commit.id)
    assert info.state == pps.JobState.JOB_SUCCESS and info.restart >= 1
    assert read(client, "slow@master:/x") == b"x"


def test_user_code_left_by_a_killed_server_is_stopped_on_restart(pachd_factory, tmp_path):
    """kill -9 leaves user code running (its own process group); the restarted server kills it."""
    import time

    import psutil

    server = pachd_factory()
    client = server.client()
    client.pfs.create_repo(repo=pfs.Repo.from_uri("in"))
    pids, first_done = tmp_path / "pids", tmp_path / "first-run"
    script = f"echo $$ >> {pids}; if [ -e {first_done} ]; then cp /pfs/in/* /pfs/out/; else touch {first_done}; sleep 120; fi"
    create_pipeline(client, "stuck", {"pfs": {"repo": "in", "glob": "/"}}, ["sh", "-c", script])
    commit = put(client, "in", {"/x": b"x"})
    deadline = time.monotonic() + 30
    while not first_done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    orphan = int(pids.read_text().split()[0])
    server.kill()
    assert psutil.pid_exists(orphan), "the user process should outlive a kill -9 of the server"
    server.restart()
    info = job(server.client(), "stuck", commit.id)
    assert info.state == pps.JobState.JOB_SUCCESS
    deadline = time.monotonic() + 10
    while psutil.pid_exists(orphan) and psutil.Process(orphan).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"user process {orphan} of the killed server still runs"
        time.sleep(0.1)


def test_user_code_reaches_pachd_lite_in_cluster(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("incluster")
    script = (
        "import os\n"
        "from pachyderm_sdk import Client\n"
        "from pachyderm_sdk.api import pps\n"
        "c = Client.new_in_cluster()\n"
        "job = pps.Job(pipeline=pps.Pipeline(name=os.environ['PPS_PIPELINE_NAME']), id=os.environ['PACH_JOB_ID'])\n"
        "info = c.pps.inspect_job(job=job)\n"
        "open('/pfs/out/state', 'w').write(str(int(info.state)))\n"
        "open('/pfs/out/env', 'w').write(os.environ['PACH_OUTPUT_COMMIT_ID'] + ' ' + os.environ["
        + repr(data + "_COMMIT")
        + "])\n"
    )
    create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/"}}, [PY, "-c", script])
    commit = put(pachd_client, data, {"/a": b"a"})
    info = job(pachd_client, name, commit.id)
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    assert read(pachd_client, f"{name}@master:/state") == str(int(pps.JobState.JOB_RUNNING)).encode()
    assert read(pachd_client, f"{name}@master:/env") == f"{commit.id} {commit.id}".encode()


def test_rollback_with_create_branch_runs_a_new_job(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("roll")
    create_pipeline(
        pachd_client,
        name,
        {"pfs": {"repo": data, "glob": "/*"}},
        ["sh", "-c", f"cp -r /pfs/{data}/* /pfs/out/"],
    )
    v1 = put(pachd_client, data, {"/x": b"1", "/y": b"y"})
    assert job(pachd_client, name, v1.id).state == pps.JobState.JOB_SUCCESS
    v2 = put(pachd_client, data, {"/x": b"2"})
    assert job(pachd_client, name, v2.id).state == pps.JobState.JOB_SUCCESS
    assert read(pachd_client, f"{name}@master:/x") == b"2"
    pachd_client.pfs.create_branch(
        branch=pfs.Branch.from_uri(f"{data}@master"), head=pfs.Commit.from_uri(f"{data}@{v1.id}")
    )
    head = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{name}@master"))
    assert head.commit.id not in (v1.id, v2.id)
    info = job(pachd_client, name, head.commit.id)
    assert info.state == pps.JobState.JOB_SUCCESS
    assert (info.data_processed, info.data_skipped) == (1, 1)  # /x changed back, /y unchanged
    assert read(pachd_client, f"{name}@master:/x") == b"1"


def test_stop_job_kills_running_user_code(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("sleepy")
    create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/"}}, ["sleep", "60"])
    commit = put(pachd_client, data, {"/a": b"a"})
    job_msg = pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)
    import time

    deadline = time.monotonic() + 20
    while pachd_client.pps.inspect_job(job=job_msg).state != pps.JobState.JOB_RUNNING:
        assert time.monotonic() < deadline, "job never started running"
        time.sleep(0.05)
    pachd_client.pps.stop_job(job=job_msg, reason="enough")
    info = pachd_client.pps.inspect_job(job=job_msg, wait=True)
    assert info.state == pps.JobState.JOB_KILLED and info.reason == "enough"
    out = pachd_client.pfs.inspect_commit(
        commit=pfs.Commit.from_uri(f"{name}@{commit.id}"), wait=pfs.CommitState.FINISHED
    )
    assert out.error


def test_listings_logs_stop_start(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("lst")
    create_pipeline(
        pachd_client,
        name,
        {"pfs": {"repo": data, "glob": "/*"}},
        ["sh", "-c", "echo one; echo two; echo three"],
    )
    commit = put(pachd_client, data, {"/a": b"a", "/b": b"b"})
    assert job(pachd_client, name, commit.id).state == pps.JobState.JOB_SUCCESS
    by_input = list(pachd_client.pps.list_job(input_commit=[pfs.Commit.from_uri(f"{data}@{commit.id}")]))
    assert [(j.job.pipeline.name, j.job.id) for j in by_input] == [(name, commit.id)]
    assert by_input[0].details.salt  # details are filled when filtering by input commit
    jobs = list(pachd_client.pps.list_job(pipeline=pps.Pipeline(name=name)))
    assert jobs[0].job.id == commit.id and len(jobs) == 2  # newest first; the first ran on the empty input
    dry = list(pachd_client.pps.list_datum(input=pps.Input(pfs=pps.PfsInput(repo=data, glob="/*"))))
    assert sorted(d.data[0].file.path for d in dry) == ["/a", "/b"]
    datums = list(pachd_client.pps.list_datum(job=pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)))
    assert len({d.datum.id for d in datums}) == 2
    one = pachd_client.pps.inspect_datum(datum=datums[0].datum)
    assert one.state == pps.DatumState.SUCCESS
    lines = [m for m in pachd_client.pps.get_logs(pipeline=pps.Pipeline(name=name), datum=one.datum)]
    assert [m.message for m in lines if m.user] == ["one", "two", "three"]
    path_of = {d.datum.id: d.data[0].file.path for d in datums}
    filtered = list(pachd_client.pps.get_logs(pipeline=pps.Pipeline(name=name), data_filters=["/b"]))
    assert filtered and {path_of[m.datum_id] for m in filtered} == {"/b"}
    everything = [m.message for m in pachd_client.pps.get_logs(pipeline=pps.Pipeline(name=name))]
    tail = [m.message for m in pachd_client.pps.get_logs(pipeline=pps.Pipeline(name=name), tail=2)]
    assert tail == everything[-2:] and len(everything) > 2
    master = [m.message for m in pachd_client.pps.get_logs(pipeline=pps.Pipeline(name=name), master=True)]
    assert any("job succeeded" in m for m in master)
    pachd_client.pps.stop_pipeline(pipeline=pps.Pipeline(name=name))
    assert (
        pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name)).state
        == pps.PipelineState.PIPELINE_PAUSED
    )
    paused = put(pachd_client, data, {"/c": b"c"})
    assert pachd_client.pps.inspect_job(
        job=pps.Job(pipeline=pps.Pipeline(name=name), id=paused.id)
    ).state == (pps.JobState.JOB_CREATED)
    pachd_client.pps.start_pipeline(pipeline=pps.Pipeline(name=name))
    assert job(pachd_client, name, paused.id).state == pps.JobState.JOB_SUCCESS
    pachd_client.pps.rerun_pipeline(pipeline=pps.Pipeline(name=name))
    history = list(pachd_client.pps.list_pipeline(pipeline=pps.Pipeline(name=name), history=-1))
    assert [p.version for p in history] == [2, 1]
    current_only = list(pachd_client.pps.list_job(pipeline=pps.Pipeline(name=name)))
    assert {j.pipeline_version for j in current_only} == {2}
    all_versions = list(pachd_client.pps.list_job(pipeline=pps.Pipeline(name=name), history=-1))
    assert {j.pipeline_version for j in all_versions} == {1, 2}


def test_job_timeout_kills_the_job(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("slow")
    create_pipeline(
        pachd_client, name, {"pfs": {"repo": data, "glob": "/"}}, ["sleep", "30"], jobTimeout="1s"
    )
    commit = put(pachd_client, data, {"/a": b"a"})
    info = job(pachd_client, name, commit.id)
    assert (info.state, info.reason) == (pps.JobState.JOB_KILLED, " jobtimed out")  # pachd's words


def test_typed_create_pipeline_request(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("typed")
    pachd_client.pps.create_pipeline(
        pipeline=pps.Pipeline(name=name),
        transform=pps.Transform(cmd=["sh", "-c", f"cat /pfs/{data}/* > /pfs/out/all"]),
        input=pps.Input(pfs=pps.PfsInput(repo=data, glob="/")),
        parallelism_spec=pps.ParallelismSpec(constant=2),
    )
    commit = put(pachd_client, data, {"/a": b"A", "/b": b"B"})
    assert job(pachd_client, name, commit.id).state == pps.JobState.JOB_SUCCESS
    assert read(pachd_client, f"{name}@master:/all") == b"AB"
    info = pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name), details=True)
    assert info.parallelism == 2 and info.details.transform.image == "ubuntu:20.04"
    assert json.loads(info.effective_spec_json)["parallelismSpec"]["constant"] in (2, "2")


def test_delete_keep_repo_delete_job_follow_logs_and_unsupported(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("keep")
    create_pipeline(
        pachd_client,
        name,
        {"pfs": {"repo": data, "glob": "/"}},
        ["sh", "-c", "echo hi; cp /pfs/*/a /pfs/out/"],
    )
    commit = put(pachd_client, data, {"/a": b"a"})
    assert job(pachd_client, name, commit.id).state == pps.JobState.JOB_SUCCESS
    follow = pachd_client.pps.get_logs(pipeline=pps.Pipeline(name=name), follow=True)
    assert next(m for m in follow if m.user).message == "hi"
    follow.close()
    job_msg = pps.Job(pipeline=pps.Pipeline(name=name), id=commit.id)
    pachd_client.pps.delete_job(job=job_msg)
    assert not pachd_client.pps.job_exists(job_msg)
    pachd_client.pps.delete_pipeline(pipeline=pps.Pipeline(name=name), keep_repo=True)
    assert not pachd_client.pps.pipeline_exists(pps.Pipeline(name=name))
    assert read(pachd_client, f"{name}@master:/a") == b"a"  # output repo kept, now a plain repo
    assert not pachd_client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{name}@master")).direct_provenance
    for extra in ({"s3Out": True}, {"service": {"internalPort": 8000, "externalPort": 30000}}):
        with pytest.raises(grpc.RpcError) as err:
            create_pipeline(
                pachd_client, unique_name("no"), {"pfs": {"repo": data, "glob": "/"}}, ["true"], **extra
            )
        assert (
            err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            and "pachd-lite does not support" in err.value.details()
        )


def test_transaction_gives_two_inputs_one_job(pachd_client):
    left, right = create_repo(pachd_client, "left"), create_repo(pachd_client, "right")
    name = unique_name("joined")
    create_pipeline(
        pachd_client, name,
        {"cross": [{"pfs": {"repo": left, "glob": "/"}}, {"pfs": {"repo": right, "glob": "/"}}]},
        ["sh", "-c", f"cat /pfs/{left}/* /pfs/{right}/* > /pfs/out/both"],
    )  # fmt: skip
    with pachd_client.transaction.transaction():
        c1 = pachd_client.pfs.start_commit(branch=pfs.Branch.from_uri(f"{left}@master"))
        c2 = pachd_client.pfs.start_commit(branch=pfs.Branch.from_uri(f"{right}@master"))
    assert c1.id == c2.id
    pachd_client.pfs.put_file_from_bytes(commit=c1, path="/l", data=b"L")
    pachd_client.pfs.put_file_from_bytes(commit=c2, path="/r", data=b"R")
    pachd_client.pfs.finish_commit(commit=c1)
    pachd_client.pfs.finish_commit(commit=c2)
    info = job(pachd_client, name, c1.id)
    assert info.state == pps.JobState.JOB_SUCCESS, info.reason
    assert read(pachd_client, f"{name}@master:/both") == b"LR"
    out = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{name}@{c1.id}"))
    assert {(p.repo.name, p.id) for p in out.direct_provenance if p.repo.type == "user"} == {
        (left, c1.id),
        (right, c1.id),
    }
    jobs = [j for j in pachd_client.pps.list_job(pipeline=pps.Pipeline(name=name))]
    assert len(jobs) == 2  # the pipeline's first job, then exactly one for both inputs


def test_server_caps_parallelism(pachd_factory, tmp_path):
    server = pachd_factory(extra_args=["--max-parallelism", "1"])
    client = server.client()
    client.pfs.create_repo(repo=pfs.Repo.from_uri("in"))
    put(client, "in", {f"/{i}": b"x" for i in range(4)})
    spans = tmp_path / "spans"
    spans.mkdir()
    script = (
        "import os,time\n"
        "start = time.time(); time.sleep(0.2)\n"
        f"open(os.path.join({str(spans)!r}, os.environ['PACH_DATUM_ID']), 'w').write(f'{{start}} {{time.time()}}')\n"
    )
    create_pipeline(
        client,
        "capped",
        {"pfs": {"repo": "in", "glob": "/*"}},
        [PY, "-c", script],
        parallelismSpec={"constant": 4},
    )
    first = client.pps.inspect_pipeline(pipeline=pps.Pipeline(name="capped")).spec_commit.id
    assert job(client, "capped", first).state == pps.JobState.JOB_SUCCESS
    intervals = sorted(tuple(map(float, p.read_text().split())) for p in spans.iterdir())
    assert len(intervals) == 4
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(intervals, intervals[1:], strict=False))


def test_edit_metadata_of_a_pipeline_and_the_cluster(pachd_client):
    data = create_repo(pachd_client, "data")
    name = unique_name("meta")
    create_pipeline(pachd_client, name, {"pfs": {"repo": data, "glob": "/*"}}, ["true"])
    picker = pps.PipelinePicker(
        name=pps.PipelinePickerPipelineName(project=pfs.ProjectPicker(name="default"), name=name)
    )
    key = unique_name("k")
    pachd_client.metadata.edit_metadata(
        edits=[
            metadata.Edit(pipeline=picker, add_key=metadata.EditAddKey(key="owner", value="ml")),
            metadata.Edit(cluster=metadata.ClusterPicker(), add_key=metadata.EditAddKey(key=key, value="1")),
        ]
    )
    assert pachd_client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name)).metadata == {"owner": "ml"}
    assert pachd_client.admin.inspect_cluster().metadata[key] == "1"
    missing = pps.PipelinePicker(
        name=pps.PipelinePickerPipelineName(project=pfs.ProjectPicker(name="default"), name=unique_name("no"))
    )
    with pytest.raises(grpc.RpcError) as err:
        pachd_client.metadata.edit_metadata(
            edits=[metadata.Edit(pipeline=missing, add_key=metadata.EditAddKey(key="a", value="b"))]
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
