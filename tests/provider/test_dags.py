"""The DAG files in dags/: they import cleanly, cheaply, and have the structure and params the UI needs."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.airflow import ROOT


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"fraud_detection", "fraud_model_rollback"} <= set(dagbag.dag_ids)


def test_fraud_detection_structure_and_params(dagbag):
    dag = dagbag.get_dag("fraud_detection")
    downstream = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert downstream == {
        "apply_pipelines": ["push_raw_data"],
        "push_raw_data": ["wait_split_data"],
        "wait_split_data": ["wait_etl"],
        "wait_etl": ["wait_ml_train"],
        "wait_ml_train": ["record_lineage"],
        "record_lineage": [],
    }
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.schedule == "@daily"
    for name in ("source", "force", "max_depth", "mlflow_experiment"):
        assert dag.params.get_param(name).description, f"param {name} needs a description for the UI form"
    assert all(dag.get_task(f"wait_{r}").deferrable for r in ("split_data", "etl", "ml_train"))


def test_fraud_model_rollback_is_manual_with_params(dagbag):
    dag = dagbag.get_dag("fraud_model_rollback")
    assert dag.schedule is None
    for name in ("to", "data"):
        assert dag.params.get_param(name).description


def test_dag_files_do_not_import_heavy_libraries_at_top_level():
    code = (
        "import sys, runpy\n"
        "for f in ('dags/fraud_detection.py', 'dags/fraud_model_rollback.py'):\n"
        "    runpy.run_path(f)\n"
        "heavy = [m for m in ('pachyderm_sdk', 'mlflow', 'pyspark', 'pandas', 'grpc') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    heavy = [line for line in out.stdout.splitlines() if line.startswith("HEAVY=")]
    assert heavy == ["HEAVY="], f"heavy imports at DAG parse time: {heavy}"
