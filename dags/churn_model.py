"""churn_model: push a day's events and labels together, let features -> churn_model run, record lineage.

A second shape next to fraud_detection, built from the provider's public operators only:
Pachyderm project ``research``; two input repos, ``events`` and ``labels``, pushed as ONE commit
set (so the ``features`` pipeline, a ``join`` of both, runs one job on the new data of both);
a small scikit-learn trainer (``churn_model``) that logs to MLflow through
``pachflow.worker.pachyderm_run``; registered model ``churn-scorer`` whose alias ``production``
follows the newest model. ``churn_model_rollback`` moves model and data back.

Daily (``@daily``, no catchup, one run at a time), from the Airflow UI with parameters, or
``airflow dags test churn_model``. When neither the data nor the pipeline specs changed, the
push is skipped and so is everything after it. Data: ``python -m example_pipelines.churn.generate
--output data/churn --days 2``. Connections: ``pachyderm_default`` and ``mlflow_default``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param, chain

from pachflow.operators.files import PachydermPutFilesOperator
from pachflow.operators.lineage import PachydermRecordLineageOperator
from pachflow.operators.pipelines import PachydermApplyPipelinesOperator
from pachflow.sensors.pachyderm import PachydermCommitSensor

ROOT = Path(__file__).resolve().parents[1]
SPECS = os.environ.get("PACHFLOW_CHURN_SPECS", str(ROOT / "example_pipelines" / "churn" / "specs"))
DATA = Path(os.environ.get("PACHFLOW_CHURN_DATA", str(ROOT / "data" / "churn")))
PROJECT = "research"
TRAIN_REPO = "churn_model"

# The commit set whose jobs to follow: the new data's, else the jobs a pipeline update started.
COMMIT_SET = (
    "{{ ti.xcom_pull(task_ids='push_data') "
    "or ti.xcom_pull(task_ids='apply_pipelines', key='commit_set') or '' }}"
)

with DAG(
    dag_id="churn_model",
    description="events + labels -> Pachyderm features (join) -> churn_model (scikit-learn, MLflow), with lineage",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=30)},
    tags=["pachyderm", "mlflow", "example"],
    params={
        "events": Param(
            str(DATA / "events" / "*.csv"),
            type="string",
            minLength=1,
            description="Event CSVs (one file per cohort day) to push to research/events.",
        ),
        "labels": Param(
            str(DATA / "labels" / "*.csv"),
            type="string",
            minLength=1,
            description="Label CSVs (same file names as the events) to push to research/labels.",
        ),
        "force": Param(False, type="boolean", description="Push and retrain even if nothing changed."),
        "logreg_c": Param(
            1.0, type="number", exclusiveMinimum=0, description="Inverse regularisation strength."
        ),
        "max_iter": Param(200, type="integer", minimum=10, description="Solver iterations."),
        "decision_threshold": Param(
            0.5, type="number", minimum=0, maximum=1, description="Churn probability that flags a customer."
        ),
        "mlflow_experiment": Param("churn", type="string", minLength=1, description="MLflow experiment."),
        "model_name": Param(
            "churn-scorer", type="string", minLength=1, description="Registered MLflow model to version."
        ),
        "alias": Param(
            "production", type="string", minLength=1, description="Alias moved to the new version."
        ),
    },
    doc_md=__doc__,
) as dag:
    apply_pipelines = PachydermApplyPipelinesOperator(
        task_id="apply_pipelines",
        specs=SPECS,
        project=PROJECT,
        mlflow_conn_id="mlflow_default",
        mlflow_pipelines=[TRAIN_REPO],
        env={
            TRAIN_REPO: {
                "MLFLOW_EXPERIMENT_NAME": "{{ params.mlflow_experiment }}",
                "LOGREG_C": "{{ params.logreg_c }}",
                "MAX_ITER": "{{ params.max_iter }}",
                "DECISION_THRESHOLD": "{{ params.decision_threshold }}",
            }
        },
        # A changed hyper-parameter must retrain: Pachyderm would skip the unchanged datum otherwise.
        reprocess_on_change=[TRAIN_REPO],
        reprocess="{{ '" + TRAIN_REPO + "' if params.force else '' }}",
    )
    push_data = PachydermPutFilesOperator(
        task_id="push_data",
        files={"events": "{{ params.events }}", "labels": "{{ params.labels }}"},
        project=PROJECT,
        force="{{ params.force }}",
    )
    waits = [
        PachydermCommitSensor(
            task_id=f"wait_{repo}",
            repo=repo,
            commit_set=COMMIT_SET,
            project=PROJECT,
            trigger_rule="none_failed",
            timeout=3600,
            retries=0,
        )
        for repo in ("features", TRAIN_REPO)
    ]
    record_lineage = PachydermRecordLineageOperator(
        task_id="record_lineage",
        commit_set="{{ (ti.xcom_pull(task_ids='wait_" + TRAIN_REPO + "') or {}).get('commit_set', '') }}",
        train_repo=TRAIN_REPO,
        model_name="{{ params.model_name }}",
        alias="{{ params.alias }}",
        project=PROJECT,
        trigger_rule="none_failed",
    )
    chain(apply_pipelines, push_data, *waits, record_lineage)
