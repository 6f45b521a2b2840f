"""Record lineage and look it up both ways: a real pachd-lite pipeline chain + real MLflow.

The chain is split -> etl -> train made of tiny copy steps and a fake trainer that logs a real
MLflow run (tests/provider/specs.py), so this runs in seconds without Spark; the e2e test runs
the real Spark jobs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
from airflow.sdk import DAG
from pachyderm_sdk.api import pfs

from pachflow.lineage import lineage_for_run
from pachflow.operators.files import PachydermPutFilesOperator
from pachflow.operators.lineage import PachydermRecordLineageOperator
from pachflow.operators.pipelines import PachydermApplyPipelinesOperator
from pachflow.sensors.pachyderm import PachydermCommitSensor
from pachflow_tools import lineage_cli
from tests.fixtures.pachd import unique_name
from tests.provider.specs import write_chain

START = pendulum.datetime(2026, 1, 1, tz="UTC")
COMMIT_SET = "{{ ti.xcom_pull(task_ids='push') or '' }}"
ALIAS = "production"


def _training_dag(specs, source, raw, names, model_name) -> DAG:
    with DAG(unique_name("train"), schedule=None, start_date=START) as dag:
        apply = PachydermApplyPipelinesOperator(
            task_id="apply", specs=str(specs), mlflow_conn_id="mlflow_default"
        )
        push = PachydermPutFilesOperator(task_id="push", source=str(source), repo=raw)
        wait = PachydermCommitSensor(
            task_id="wait", repo=names["train"], commit_set=COMMIT_SET, progress_interval=1, timeout=300
        )
        record = PachydermRecordLineageOperator(
            task_id="record",
            commit_set="{{ (ti.xcom_pull(task_ids='wait') or {}).get('commit_set', '') }}",
            train_repo=names["train"],
            model_name=model_name,
            alias=ALIAS,
            trigger_rule="none_failed",
        )
        apply >> push >> wait >> record
    return dag


def _training_setup(tmp_path) -> tuple[str, str, dict[str, str], Path]:
    """A fresh raw repo name, model name, chain of specs in tmp_path/specs, and a data folder with one day."""
    raw, model_name = unique_name("raw"), unique_name("model")
    names = write_chain(tmp_path / "specs", unique_name("p"), raw)
    data = tmp_path / "data"
    data.mkdir()
    (data / "day1.csv").write_text("a,b\n1,2\n")
    return raw, model_name, names, data


def _record_only_dag(commit_set, raw, names, model_name) -> DAG:
    with DAG(unique_name("record"), schedule=None, start_date=START) as dag:
        PachydermRecordLineageOperator(
            task_id="record",
            commit_set=commit_set,
            train_repo=names["train"],
            model_name=model_name,
            alias=ALIAS,
        )
    return dag


def _cli(capsys, module, *args) -> tuple[int, str]:
    capsys.readouterr()  # drop what the earlier dag.test() runs logged to stdout
    code = module.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out if code == 0 else captured.out + captured.err


def test_record_and_lookup_both_ways_and_idempotent_retry(
    run_dag, pachyderm_connection, mlflow_connection, pachd_server, tmp_path, capsys
):
    from mlflow import MlflowClient

    client = pachd_server.client()
    mlflow_client = MlflowClient(mlflow_connection)
    raw, model_name, names, data = _training_setup(tmp_path)

    dr = run_dag(_training_dag(tmp_path / "specs", data, raw, names, model_name))
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert states == {"apply": "success", "push": "success", "wait": "success", "record": "success"}, states
    c1 = dr.get_task_instance("push").xcom_pull(task_ids="push")
    rec = dr.get_task_instance("record").xcom_pull(task_ids="record", key="lineage")

    # XCom lineage: every repo, upstream first, all in the push's commit set
    assert list(rec["commits"]) == [raw, names["split"], names["etl"], names["train"]]
    assert rec["sources"] == [raw] and rec["project"] == "default" and rec["model_name"] == model_name
    assert set(rec["commits"].values()) == {c1} and rec["commit_set"] == c1
    assert rec["model_version"] == "1"
    run_id = rec["mlflow_run_id"]

    # MLflow run tags, model version tags and Pachyderm commit metadata agree
    tags = mlflow_client.get_run(run_id).data.tags
    assert tags["pachyderm.commit"] == c1 and tags["pachyderm.pipeline"] == names["train"]
    assert tags["pachyderm.project"] == "default"
    assert tags[f"pachyderm.provenance.{raw}"] == c1 and tags[f"pachyderm.provenance.{names['etl']}"] == c1
    assert tags["airflow.dag_id"] == dr.dag_id and tags["airflow.run_id"] == dr.run_id
    mv = mlflow_client.get_model_version(model_name, "1")
    assert mv.run_id == run_id and mv.tags["pachyderm.commit"] == c1
    assert mlflow_client.get_model_version_by_alias(model_name, ALIAS).version == "1"
    meta = client.pfs.inspect_commit(
        commit=pfs.Commit(
            repo=pfs.Repo(name=names["train"], type="user", project=pfs.Project(name="default")), id=c1
        )
    ).metadata
    assert meta["mlflow.run_id"] == run_id and meta["mlflow.model_version"] == "1"
    assert meta["mlflow.model_name"] == model_name
    assert meta["mlflow.experiment_id"] == rec["mlflow_experiment_id"] and meta["airflow.dag_id"] == dr.dag_id
    link = dr.get_task_instance("record").xcom_pull(task_ids="record", key="_link_MLflowRunLink")
    assert link == f"{mlflow_connection}/#/experiments/{rec['mlflow_experiment_id']}/runs/{run_id}"

    # A retry of the recording task creates no second model version
    dr2 = run_dag(_record_only_dag(c1, raw, names, model_name))
    assert dr2.get_task_instance("record").xcom_pull(task_ids="record", key="lineage")["model_version"] == "1"
    assert len(mlflow_client.search_model_versions(f"name = '{model_name}'")) == 1

    # pachflow lineage, both directions
    conn = [
        "--pachd-address",
        f"{pachd_server.host}:{pachd_server.port}",
        "--tracking-uri",
        mlflow_connection,
    ]
    code, out = _cli(capsys, lineage_cli, "--run-id", run_id, "--json", *conn)
    assert code == 0
    forward = json.loads(out)
    assert forward["commits"][raw] == c1 and forward["consistent"] is True
    code, out = _cli(capsys, lineage_cli, "--commit", f"{raw}@{c1}", "--json", *conn)
    assert code == 0
    backward = json.loads(out)
    assert [r["mlflow_run_id"] for r in backward] == [run_id]
    assert backward[0]["source"] == "pachyderm commit metadata" and backward[0]["model_version"] == "1"
    code, out = _cli(
        capsys, lineage_cli, "--commit", f"{raw}@{c1}", "--no-pachyderm", "--tracking-uri", mlflow_connection
    )
    assert code == 0 and run_id in out and "mlflow tag search" in out  # fallback without pachd
    code, out = _cli(capsys, lineage_cli, "--run-id", run_id, *conn)
    assert f"{raw}@{c1}" in out and f"MLflow run {run_id}" in out and "version 1" in out


def test_force_retrains_unchanged_data_and_records_it_once(
    run_dag, pachyderm_connection, mlflow_connection, pachd_server, tmp_path
):
    """force = reprocess the training pipeline + push an identical commit: one new run, recorded once."""
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(mlflow_connection)
    raw, model_name, names, data = _training_setup(tmp_path)
    first = run_dag(_training_dag(tmp_path / "specs", data, raw, names, model_name))
    run1 = first.get_task_instance("record").xcom_pull(task_ids="record", key="lineage")["mlflow_run_id"]

    with DAG(unique_name("force"), schedule=None, start_date=START) as dag:
        apply = PachydermApplyPipelinesOperator(
            task_id="apply",
            specs=str(tmp_path / "specs"),
            mlflow_conn_id="mlflow_default",
            reprocess=names["train"],
        )
        push = PachydermPutFilesOperator(task_id="push", source=str(data), repo=raw, force=True)
        wait = PachydermCommitSensor(task_id="wait", repo=names["train"], commit_set=COMMIT_SET, timeout=300)
        record = PachydermRecordLineageOperator(
            task_id="record",
            commit_set="{{ (ti.xcom_pull(task_ids='wait') or {}).get('commit_set', '') }}",
            train_repo=names["train"],
            model_name=model_name,
            alias=ALIAS,
        )
        apply >> push >> wait >> record
    dr = run_dag(dag)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    rec = dr.get_task_instance("record").xcom_pull(task_ids="record", key="lineage")
    assert rec["mlflow_run_id"] != run1  # retrained although the data did not change
    assert rec["commit_set"] == dr.get_task_instance("push").xcom_pull(task_ids="push")
    versions = mlflow_client.search_model_versions(f"name = '{model_name}'")
    assert sorted(v.run_id for v in versions) == sorted([run1, rec["mlflow_run_id"]])
    assert mlflow_client.get_model_version_by_alias(model_name, ALIAS).run_id == rec["mlflow_run_id"]
    # Both directions agree, whichever job of the two commit sets actually trained the model.
    forward = lineage_for_run(mlflow_client, rec["mlflow_run_id"], client=pachd_server.client())
    assert forward["consistent"] is True and forward["commits"][raw]


def _dag_module():
    import importlib.util

    from tests.fixtures.airflow import ROOT

    spec = importlib.util.spec_from_file_location(
        "fraud_detection_dag_file", ROOT / "dags" / "fraud_detection.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hyperparameter_change_without_new_data_retrains_via_the_update_commit_set(
    run_dag, pachyderm_connection, mlflow_connection, pachd_server, tmp_path
):
    """The fraud_detection wiring (its COMMIT_SET template, none_failed waits): no new data but a changed
    training spec -> push skipped, upstream waits skipped (not reached), training waited for and recorded."""
    commit_set_template = _dag_module().COMMIT_SET
    raw, model_name, names, data = _training_setup(tmp_path)
    run1 = run_dag(_training_dag(tmp_path / "specs", data, raw, names, model_name))
    first = run1.get_task_instance("record").xcom_pull(task_ids="record", key="lineage")

    with DAG(unique_name("hyper"), schedule=None, start_date=START) as dag:
        apply = PachydermApplyPipelinesOperator(
            task_id="apply_pipelines",
            specs=str(tmp_path / "specs"),
            mlflow_conn_id="mlflow_default",
            env={names["train"]: {"MAX_DEPTH": "9"}},
            reprocess_on_change=[names["train"]],
        )
        push = PachydermPutFilesOperator(task_id="push_raw_data", source=str(data), repo=raw)
        waits = [
            PachydermCommitSensor(
                task_id=f"wait_{key}",
                repo=names[key],
                commit_set=commit_set_template,
                trigger_rule="none_failed",
                missing_grace=2,
                timeout=300,
            )
            for key in ("split", "train")
        ]
        record = PachydermRecordLineageOperator(
            task_id="record",
            commit_set="{{ (ti.xcom_pull(task_ids='wait_train') or {}).get('commit_set', '') }}",
            train_repo=names["train"],
            model_name=model_name,
            trigger_rule="none_failed",
        )
        apply >> push >> waits[0] >> waits[1] >> record
    dr = run_dag(dag)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states == {
        "apply_pipelines": "success",
        "push_raw_data": "skipped",
        "wait_split": "skipped",
        "wait_train": "success",
        "record": "success",
    }, states
    rec = dr.get_task_instance("record").xcom_pull(task_ids="record", key="lineage")
    update_set = dr.get_task_instance("apply_pipelines").xcom_pull(
        task_ids="apply_pipelines", key="commit_set"
    )
    assert rec["commit_set"] == update_set != first["commit_set"]
    assert rec["commits"][raw] == first["commits"][raw]  # trained on the same raw commit
    assert rec["mlflow_run_id"] != first["mlflow_run_id"] and rec["model_version"] == "2"


def test_record_operator_requires_train_repo_and_model_name_at_parse_time():
    import pytest

    with DAG(unique_name("parse"), schedule=None, start_date=START):
        with pytest.raises(TypeError, match="model_name"):
            PachydermRecordLineageOperator(task_id="no_model", train_repo="train")
        with pytest.raises(TypeError, match="train_repo"):
            PachydermRecordLineageOperator(task_id="no_repo", model_name="m")


def test_record_operator_with_an_empty_model_name_fails_at_task_start_naming_it(
    run_dag, pachyderm_connection, mlflow_connection, capsys
):
    """A template that renders empty must fail the task, not register under some default model."""
    with DAG(unique_name("empty"), schedule=None, start_date=START) as dag:
        PachydermRecordLineageOperator(
            task_id="record",
            commit_set="0123456789abcdef0123456789abcdef",
            train_repo="train",
            model_name="{{ params.get('model_name', '') }}",
        )
    capsys.readouterr()
    dr = run_dag(dag)
    captured = capsys.readouterr()
    assert str(dr.get_task_instance("record").state) == "failed"
    assert "parameter model_name rendered empty" in captured.out + captured.err
