"""PachydermApplyPipelinesOperator against a real pachd-lite (pipelines API), run by dag.test()."""

from __future__ import annotations

import json

import pendulum
import pytest
from airflow.sdk import DAG
from pachyderm_sdk.api import pfs, pps

from pachflow.operators.pipelines import PachydermApplyPipelinesOperator
from pachflow.pipelines import PipelineSpecError, load_spec, spec_files
from tests.fixtures.pachd import unique_name
from tests.provider.specs import write_chain

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _apply(run_dag, specs_dir, **kwargs):
    with DAG(unique_name("apply"), schedule=None, start_date=START) as dag:
        PachydermApplyPipelinesOperator(task_id="apply", specs=str(specs_dir), **kwargs)
    dr = run_dag(dag)
    ti = dr.get_task_instance("apply")
    assert ti.state == "success", f"apply task ended {ti.state}"
    return ti.xcom_pull(task_ids="apply"), ti.xcom_pull(task_ids="apply", key="commit_set")


def _version(client, name: str) -> int:
    return client.pps.inspect_pipeline(
        pipeline=pps.Pipeline(name=name, project=pfs.Project(name="default"))
    ).version


def test_apply_creates_then_is_idempotent_then_updates_only_what_changed(
    run_dag, pachyderm_connection, mlflow_connection, pachd_server, tmp_path
):
    client = pachd_server.client()
    raw = unique_name("raw")
    names = write_chain(tmp_path / "specs", unique_name("p"), raw)

    result, commit_set = _apply(run_dag, tmp_path / "specs", mlflow_conn_id="mlflow_default")
    assert result["actions"] == {n: "created" for n in names.values()}
    assert result["created_repos"] == [f"default/{raw}"]  # the missing input repo was created
    assert commit_set
    versions = {n: _version(client, n) for n in names.values()}
    train = client.pps.inspect_pipeline(
        pipeline=pps.Pipeline(name=names["train"], project=pfs.Project(name="default")), details=True
    )
    assert (
        json.loads(train.user_spec_json or train.effective_spec_json)["transform"]["env"][
            "MLFLOW_TRACKING_URI"
        ]
        == mlflow_connection
    )

    result, commit_set = _apply(run_dag, tmp_path / "specs", mlflow_conn_id="mlflow_default")
    assert result["actions"] == {n: "unchanged" for n in names.values()}
    assert result["commit_sets"] == [] and commit_set == ""
    assert {n: _version(client, n) for n in names.values()} == versions  # no new spec commit, no job

    env = {names["train"]: {"MAX_DEPTH": "7"}}
    result, commit_set = _apply(run_dag, tmp_path / "specs", mlflow_conn_id="mlflow_default", env=env)
    assert result["actions"][names["train"]] == "updated"
    assert result["actions"][names["split"]] == result["actions"][names["etl"]] == "unchanged"
    assert _version(client, names["train"]) == versions[names["train"]] + 1
    assert commit_set

    result, _ = _apply(run_dag, tmp_path / "specs", mlflow_conn_id="mlflow_default", env=env)
    assert set(result["actions"].values()) == {"unchanged"}

    result, _ = _apply(
        run_dag, tmp_path / "specs", mlflow_conn_id="mlflow_default", env=env, reprocess=names["train"]
    )
    assert result["actions"][names["train"]] == "updated"
    assert result["actions"][names["etl"]] == "unchanged"


def test_bad_spec_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{\n  "pipeline": {"name": "x"},\n  "transform": {"cmd": ["a"]\n')
    with pytest.raises(PipelineSpecError, match=r"broken.json: line \d+"):
        load_spec(bad)
    missing = tmp_path / "noinput.json"
    missing.write_text(json.dumps({"pipeline": {"name": "x"}, "transform": {"cmd": ["a"]}}))
    with pytest.raises(PipelineSpecError, match="noinput.json: field input"):
        load_spec(missing)
    with pytest.raises(PipelineSpecError, match="no such file"):
        spec_files(str(tmp_path / "nope.json"))


DIGEST_PASSWORD = (
    "import hashlib, os, pathlib\n"
    "pathlib.Path('/pfs/out/user').write_text(os.environ['MLFLOW_TRACKING_USERNAME'])\n"
    "pathlib.Path('/pfs/out/password.sha256').write_text("
    "hashlib.sha256(os.environ['MLFLOW_TRACKING_PASSWORD'].encode()).hexdigest())\n"
    "print('training for', os.environ['MLFLOW_TRACKING_USERNAME'], 'with', os.environ['MLFLOW_TRACKING_PASSWORD'])\n"
)


def test_mlflow_basic_auth_credentials_go_through_a_pachyderm_secret(
    run_dag, pachyderm_connection, pachd_server, tmp_path
):
    """The connection's login/password reach the training code via a Pachyderm secret; no spec,
    XCom or log holds the password; re-applying is idempotent; a new password reaches the next job."""
    import hashlib

    from tests.fixtures.airflow import airflow_connections
    from tests.provider.specs import spec

    client = pachd_server.client()
    raw, train = unique_name("raw"), unique_name("train")
    secret = unique_name("mlflow-creds").lower().replace("_", "-")
    password = "conn-Pw-" + unique_name("x")
    client.pfs.create_repo(repo=pfs.Repo(name=raw, type="user", project=pfs.Project(name="default")))
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    train_spec = spec(train, raw, DIGEST_PASSWORD.replace("{", "{{").replace("}", "}}"), glob="/")
    train_spec["transform"]["env"] = {"MLFLOW_TRACKING_URI": ""}  # declares it: the operator fills it in
    (specs_dir / "train.json").write_text(json.dumps(train_spec))
    mlflow = {"conn_type": "http", "host": "127.0.0.1", "port": 5999, "schema": "http", "login": "trainer"}

    def apply(pw: str):
        with airflow_connections(mlflow_auth=dict(mlflow, password=pw)):
            return _apply(run_dag, specs_dir, mlflow_conn_id="mlflow_auth", mlflow_secret_name=secret)

    def stored(name: str) -> pps.PipelineInfo:
        return client.pps.inspect_pipeline(
            pipeline=pps.Pipeline(name=name, project=pfs.Project(name="default")), details=True
        )

    result, _ = apply(password)
    assert result["actions"] == {train: "created"} and result["secrets"] == {secret: "created"}
    assert password not in json.dumps(result)  # the XCom
    assert client.pps.inspect_secret(secret=pps.Secret(name=secret)).secret.name == secret
    info = stored(train)
    effective = json.loads(info.effective_spec_json)
    assert effective["transform"]["secrets"] == [
        {"name": secret, "key": "username", "envVar": "MLFLOW_TRACKING_USERNAME"},
        {"name": secret, "key": "password", "envVar": "MLFLOW_TRACKING_PASSWORD"},
    ]
    assert effective["transform"]["env"]["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5999"
    assert "MLFLOW_TRACKING_PASSWORD" not in effective["transform"]["env"]
    for text in (info.effective_spec_json, info.user_spec_json, info.to_json()):
        assert password not in text

    result, commit_set = apply(password)  # same credentials, same spec: no update, no job
    assert result["actions"] == {train: "unchanged"} and result["secrets"] == {secret: "replaced"}
    assert commit_set == "" and stored(train).version == info.version

    with client.pfs.commit(branch=pfs.Branch.from_uri(f"{raw}@master")) as c:
        c.put_file_from_bytes("/day.csv", b"a,b\n1,2\n")
    job = client.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name=train), id=c.id), wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason

    def digest(commit_id: str) -> str:
        return client.pfs.pfs_file(pfs.File.from_uri(f"{train}@{commit_id}:/password.sha256")).read().decode()

    assert digest(c.id) == hashlib.sha256(password.encode()).hexdigest()
    assert client.pfs.pfs_file(pfs.File.from_uri(f"{train}@{c.id}:/user")).read() == b"trainer"
    logs = [m.message for m in client.pps.get_logs(pipeline=pps.Pipeline(name=train))]
    # every value of a secret is masked, the username too
    assert "training for [redacted] with [redacted]" in logs and not any(password in m for m in logs)

    rotated = password + "-rotated"
    result, _ = apply(rotated)  # a new password: still no spec change, the next job reads it
    assert result["actions"] == {train: "unchanged"}
    with client.pfs.commit(branch=pfs.Branch.from_uri(f"{raw}@master")) as c2:
        c2.put_file_from_bytes("/day2.csv", b"a,b\n3,4\n")
    job = client.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name=train), id=c2.id), wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    assert digest(c2.id) == hashlib.sha256(rotated.encode()).hexdigest()
    assert rotated not in stored(train).to_json()


# -- projects ------------------------------------------------------------------------------------
def _bare_connection(pachd_server) -> dict:
    """A connection with no ``project`` extra."""
    return {"conn_type": "pachyderm", "host": pachd_server.host, "port": pachd_server.port}


def test_apply_creates_a_missing_project_and_respects_the_spec_project(run_dag, pachd_server, tmp_path):
    from tests.fixtures.airflow import airflow_connections
    from tests.provider.specs import COPY, spec

    client = pachd_server.client()
    project = unique_name("research")
    raw, own, plain = unique_name("raw"), unique_name("own"), unique_name("plain")
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    in_project = spec(own, raw, COPY)
    in_project["pipeline"]["project"] = {"name": project}  # the spec's own project, not existing yet
    no_project = spec(plain, raw, COPY)
    del no_project["pipeline"]["project"]
    (specs_dir / "own.json").write_text(json.dumps(in_project))
    (specs_dir / "plain.json").write_text(json.dumps(no_project))

    with airflow_connections(pachyderm_default=_bare_connection(pachd_server)):
        result, _ = _apply(run_dag, specs_dir)
    assert result["created_projects"] == [project]
    assert sorted(result["created_repos"]) == sorted([f"{project}/{raw}", f"default/{raw}"])
    assert client.pfs.project_exists(pfs.Project(name=project))
    assert client.pps.pipeline_exists(pps.Pipeline(name=own, project=pfs.Project(name=project)))
    assert not client.pps.pipeline_exists(pps.Pipeline(name=own, project=pfs.Project(name="default")))
    # a spec without a project goes to pachd's default when neither task nor connection sets one
    assert client.pps.pipeline_exists(pps.Pipeline(name=plain, project=pfs.Project(name="default")))

    other = unique_name("elsewhere")  # the same spec without a project follows the task's project
    with airflow_connections(pachyderm_default=_bare_connection(pachd_server)):
        (specs_dir / "own.json").unlink()
        result, _ = _apply(run_dag, specs_dir, project=other)
    assert result["created_projects"] == [other] and result["actions"] == {plain: "created"}
    assert client.pps.pipeline_exists(pps.Pipeline(name=plain, project=pfs.Project(name=other)))


def test_a_spec_project_contradicting_the_task_or_connection_project_fails_naming_both(
    run_dag, pachd_server, tmp_path, capsys
):
    from airflow.utils.state import TaskInstanceState

    from tests.fixtures.airflow import airflow_connections, pachyderm_conn
    from tests.provider.specs import COPY, spec

    client = pachd_server.client()
    name, spec_project = unique_name("p"), unique_name("specproj")
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    s = spec(name, unique_name("raw"), COPY)
    s["pipeline"]["project"] = {"name": spec_project}
    (specs_dir / "pipe.json").write_text(json.dumps(s))

    def failed_apply(conn: dict, **kwargs) -> str:
        with DAG(unique_name("apply"), schedule=None, start_date=START) as dag:
            PachydermApplyPipelinesOperator(task_id="apply", specs=str(specs_dir), **kwargs)
        with airflow_connections(pachyderm_default=conn):
            capsys.readouterr()
            ti = run_dag(dag).get_task_instance("apply")
        out = capsys.readouterr()
        assert ti.state == TaskInstanceState.FAILED
        return out.out + out.err

    text = failed_apply(_bare_connection(pachd_server), project="taskproj")
    assert f"{specs_dir / 'pipe.json'}: pipeline.project is '{spec_project}'" in text
    assert "but the task's project is 'taskproj' (set by the task's project argument)" in text

    text = failed_apply(pachyderm_conn(pachd_server.host, pachd_server.port, project="connproj"))
    assert f"pipeline.project is '{spec_project}'" in text
    assert "the task's project is 'connproj' (set by the 'project' extra of connection" in text
    assert not client.pfs.project_exists(pfs.Project(name=spec_project)), "nothing was applied"
