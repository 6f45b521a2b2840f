"""fraud_detection: push the day's raw CSVs to Pachyderm, let split -> etl -> ml_train run, record lineage.

Daily (``@daily``, no catchup, one run at a time), from the Airflow UI with parameters, or
``airflow dags test fraud_detection``. When neither the data nor the pipeline specs changed,
the push is skipped and so is everything after it: nothing is retrained.

Connections: ``pachyderm_default`` (type pachyderm) and ``mlflow_default`` (type mlflow or http).
Top-level code stays cheap: the operators import pachyderm_sdk and mlflow inside ``execute``.
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
from spark_jobs.columns import COLUMNS as PAYSIM_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SPECS = os.environ.get("PACHFLOW_SPECS", str(ROOT / "pachyderm_specs"))
# Where `make demo` (`pachflow local`) generates the sample: the local stack's data folder.
LOCAL_DIR = Path(os.environ.get("PACHFLOW_LOCAL_DIR") or ROOT / ".local")
DEFAULT_SOURCE = os.environ.get("PACHFLOW_RAW_SOURCE", str(LOCAL_DIR / "data" / "raw"))
RAW_REPO = "raw_data"

# The commit set whose jobs to follow: the new raw commit, else the jobs a pipeline update started.
COMMIT_SET = (
    "{{ ti.xcom_pull(task_ids='push_raw_data') "
    "or ti.xcom_pull(task_ids='apply_pipelines', key='commit_set') or '' }}"
)

with DAG(
    dag_id="fraud_detection",
    description="Raw transactions -> Pachyderm split/etl/ml_train -> MLflow model, with two-way lineage",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=30)},
    tags=["pachyderm", "mlflow", "spark"],
    params={
        "source": Param(
            DEFAULT_SOURCE,
            type="string",
            minLength=1,
            description="Raw PaySim-shaped CSVs to push: a file, a directory or a glob; only *.csv files "
            "are taken, and each must have the PaySim header.",
        ),
        "force": Param(
            False,
            type="boolean",
            description="Push and retrain even if the raw data and the pipeline specs did not change.",
        ),
        "max_depth": Param(
            5, type="integer", minimum=1, maximum=30, description="Decision tree maximum depth."
        ),
        "max_bins": Param(
            32, type="integer", minimum=2, maximum=1024, description="Decision tree maximum bins."
        ),
        "min_instances_per_node": Param(
            1, type="integer", minimum=1, description="Minimum rows per tree node after a split."
        ),
        "decision_threshold": Param(
            0.5,
            type="number",
            minimum=0,
            maximum=1,
            description="Fraud probability above which a customer is flagged.",
        ),
        "mlflow_experiment": Param(
            "fraud-detection",
            type="string",
            minLength=1,
            description="MLflow experiment the training run logs to.",
        ),
        "model_name": Param(
            "fraud-detector", type="string", minLength=1, description="Registered MLflow model to version."
        ),
    },
    doc_md=__doc__,
) as dag:
    apply_pipelines = PachydermApplyPipelinesOperator(
        task_id="apply_pipelines",
        specs=SPECS,
        mlflow_conn_id="mlflow_default",
        mlflow_pipelines=["ml_train"],
        env={
            "ml_train": {
                "MLFLOW_EXPERIMENT_NAME": "{{ params.mlflow_experiment }}",
                "MLFLOW_MODEL_NAME": "{{ params.model_name }}",
                "MAX_DEPTH": "{{ params.max_depth }}",
                "MAX_BINS": "{{ params.max_bins }}",
                "MIN_INSTANCES_PER_NODE": "{{ params.min_instances_per_node }}",
                "DECISION_THRESHOLD": "{{ params.decision_threshold }}",
            }
        },
        # A changed hyper-parameter must retrain: Pachyderm would skip the unchanged datum otherwise.
        reprocess_on_change=["ml_train"],
        reprocess="{{ 'ml_train' if params.force else '' }}",
    )
    push_raw_data = PachydermPutFilesOperator(
        task_id="push_raw_data",
        source="{{ params.source }}",
        repo=RAW_REPO,
        include="*.csv",
        expected_columns=PAYSIM_COLUMNS,
        force="{{ params.force }}",
    )
    waits = [
        PachydermCommitSensor(
            task_id=f"wait_{repo}",
            repo=repo,
            commit_set=COMMIT_SET,
            trigger_rule="none_failed",
            timeout=4 * 3600,
            retries=0,
            # split writes a summary per raw file under /rejects: its rejected rows show in the log
            report_rejects="/rejects" if repo == "split_data" else None,
        )
        for repo in ("split_data", "etl", "ml_train")
    ]
    record_lineage = PachydermRecordLineageOperator(
        task_id="record_lineage",
        commit_set="{{ (ti.xcom_pull(task_ids='wait_ml_train') or {}).get('commit_set', '') }}",
        train_repo="ml_train",
        model_name="{{ params.model_name }}",
        alias="champion",
        trigger_rule="none_failed",
    )
    chain(apply_pipelines, push_raw_data, *waits, record_lineage)
