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
