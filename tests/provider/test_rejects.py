"""Rejected rows reach the sensor log, the lineage record, the MLflow run and ``pachflow rejects``.

A copy step stands in for split: the pushed data holds a reject summary under ``rejects/``, so
the step's output has one, as split_data writes them (contract in pachflow.rejects).
"""

from __future__ import annotations

import json

import pendulum
from airflow.sdk import DAG
from pachyderm_sdk.api import pfs

from pachflow.operators.files import PachydermPutFilesOperator
from pachflow.operators.lineage import PachydermRecordLineageOperator
from pachflow.operators.pipelines import PachydermApplyPipelinesOperator
from pachflow.rejects import META_REJECTED_ROWS
from pachflow.sensors.pachyderm import PachydermCommitSensor
from pachflow_tools import lineage_cli, rejects_cli
from tests.fixtures.pachd import unique_name
from tests.provider.specs import write_chain

START = pendulum.datetime(2026, 1, 1, tz="UTC")
COMMIT_SET = "{{ ti.xcom_pull(task_ids='push') or '' }}"
SUMMARY = {
    "file": "raw@c1:/day1.csv",
    "rows": 10,
    "valid": 7,
    "rejected": 3,
    "filtered": 0,
    "reasons": {"empty row (every field empty)": 2, "amount is negative": 1},
    "first": [
        {"line": 4, "reason": "empty row (every field empty)"},
        {"line": 7, "reason": "amount is negative: -1"},
    ],
    "rejects_file": "/rejects/day1.csv",
}


def _dag(specs, data, raw, names, model_name) -> DAG:
    with DAG(unique_name("rejects"), schedule=None, start_date=START) as dag:
        apply = PachydermApplyPipelinesOperator(
            task_id="apply", specs=str(specs), mlflow_conn_id="mlflow_default"
        )
        push = PachydermPutFilesOperator(task_id="push", source=str(data), repo=raw)
        wait_split = PachydermCommitSensor(
            task_id="wait_split",
            repo=names["split"],
            commit_set=COMMIT_SET,
            report_rejects="/rejects",
            timeout=300,
        )
        wait_train = PachydermCommitSensor(
            task_id="wait_train", repo=names["train"], commit_set=COMMIT_SET, timeout=300
        )
        record = PachydermRecordLineageOperator(
            task_id="record", commit_set=COMMIT_SET, train_repo=names["train"], model_name=model_name
        )
        apply >> push >> wait_split >> wait_train >> record
    return dag


def test_rejected_rows_in_sensor_log_lineage_mlflow_and_cli(
    run_dag, pachyderm_connection, mlflow_connection, pachd_server, tmp_path, capsys
):
    from mlflow import MlflowClient

    raw, model_name = unique_name("raw"), unique_name("model")
    names = write_chain(tmp_path / "specs", unique_name("p"), raw)
    data = tmp_path / "data"
    (data / "rejects").mkdir(parents=True)
    (data / "day1.csv").write_text("a,b\n1,2\n")
    (data / "rejects" / "day1.json").write_text(json.dumps(SUMMARY))

    capsys.readouterr()
    dr = run_dag(_dag(tmp_path / "specs", data, raw, names, model_name))
    log = "".join(capsys.readouterr())
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    commit = dr.get_task_instance("push").xcom_pull(task_ids="push")
    split_uri = f"default/{names['split']}@{commit}"

    # the sensor log: count, first reasons, where the rejected rows are
    assert f"{split_uri}: 3 of 10 rows rejected in 1 file(s)" in log
    assert "raw@c1:/day1.csv: 3 of 10 rows rejected" in log and f"{split_uri}:/rejects/day1.csv" in log
    assert "line 4: empty row (every field empty)" in log
    assert dr.get_task_instance("wait_split").xcom_pull(task_ids="wait_split")["rejected_rows"] == 3
    split_commit = pfs.Commit(
        repo=pfs.Repo(name=names["split"], type="user", project=pfs.Project(name="default")), id=commit
    )
    assert pachd_server.client().pfs.inspect_commit(commit=split_commit).metadata[META_REJECTED_ROWS] == "3"

    # the lineage record and the MLflow run
    rec = dr.get_task_instance("record").xcom_pull(task_ids="record", key="lineage")
    assert rec["rejected_rows"] == 3 and rec["rejected_rows_by_commit"] == {split_uri: 3}
    run = MlflowClient(mlflow_connection).get_run(rec["mlflow_run_id"])
    assert run.data.metrics["rejected_rows"] == 3

    # pachflow rejects, by commit id and by branch
    address = ["--pachd-address", f"{pachd_server.host}:{pachd_server.port}"]
    capsys.readouterr()
    assert rejects_cli.main([f"{names['split']}@{commit}", *address]) == 0
    out = capsys.readouterr().out
    assert "3 of 10 rows rejected" in out and "line 7: amount is negative: -1" in out
    assert rejects_cli.main([f"default/{names['split']}@master", "--json", *address]) == 0
    assert json.loads(capsys.readouterr().out)["rejected_rows"] == 3

    # unknown repo, branch or commit: one line naming it, no traceback, no search
    conn = [*address, "--tracking-uri", mlflow_connection]
    for args, expected in [
        ([f"{names['split']}@nosuchbranch", *address], "has no commit or branch 'nosuchbranch'"),
        ([f"nosuchrepo@{commit}", *address], "has no repo 'nosuchrepo'"),
    ]:
        assert rejects_cli.main(args) == 1
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, err
    assert lineage_cli.main(["--commit", f"{raw}@{'0' * 32}", *conn]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"pachflow lineage: default/{raw} has no commit or branch '{'0' * 32}'", err
    assert lineage_cli.main(["--commit", f"{raw}@master", "--json", *conn]) == 0  # a branch: its head
    (found,) = json.loads(capsys.readouterr().out)
    assert found["mlflow_run_id"] == rec["mlflow_run_id"] and found["rejected_rows"] == 3
    assert lineage_cli.main(["--run-id", rec["mlflow_run_id"], *conn]) == 0
    assert f"rejected rows upstream: 3 (see: pachflow rejects {split_uri})" in capsys.readouterr().out
