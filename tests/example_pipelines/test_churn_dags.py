"""The churn example's DAG files: they import cleanly and cheaply, with the shape and params the UI needs."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.airflow import ROOT

DAG_FILES = ("dags/churn_model.py", "dags/churn_model_rollback.py")


def _dag(dag_id: str):
    """The DAG ``dag_id`` parsed from ``dags/<dag_id>.py``, which must import without errors."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py"))
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def test_churn_model_structure_and_params(airflow_db):
    dag = _dag("churn_model")
    downstream = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert downstream == {
        "apply_pipelines": ["push_data"],
        "push_data": ["wait_features"],
        "wait_features": ["wait_churn_model"],
        "wait_churn_model": ["record_lineage"],
        "record_lineage": [],
    }
    assert (dag.schedule, dag.max_active_runs, dag.catchup) == ("@daily", 1, False)
    assert {t.task_id: t.project for t in dag.tasks} == dict.fromkeys(downstream, "research")
    assert dict(dag.get_task("push_data").files) == {
        "events": "{{ params.events }}",
        "labels": "{{ params.labels }}",
    }
    assert dag.get_task("record_lineage").train_repo == "churn_model"
    for name, default in (
        ("model_name", "churn-scorer"),
        ("alias", "production"),
        ("mlflow_experiment", "churn"),
    ):
        assert dag.params[name] == default
    for name in dag.params:
        assert dag.params.get_param(name).description, f"param {name} needs a description for the UI form"
    assert all(dag.get_task(f"wait_{r}").deferrable for r in ("features", "churn_model"))


def test_churn_model_rollback_is_manual_and_moves_data_by_default(airflow_db):
    dag = _dag("churn_model_rollback")
    assert dag.schedule is None and [t.task_id for t in dag.tasks] == ["rollback"]
    assert dag.params["data"] is True and dag.params["model_name"] == "churn-scorer"
    for name in ("to", "data", "alias"):
        assert dag.params.get_param(name).description


def test_churn_dag_files_do_not_import_heavy_libraries_at_top_level():
    code = (
        "import sys, runpy\n"
        f"for f in {DAG_FILES!r}:\n"
        "    runpy.run_path(f)\n"
        "heavy = [m for m in ('pachyderm_sdk', 'mlflow', 'pandas', 'sklearn', 'grpc') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    heavy = [line for line in out.stdout.splitlines() if line.startswith("HEAVY=")]
    assert heavy == ["HEAVY="], f"heavy imports at DAG parse time: {heavy}"
