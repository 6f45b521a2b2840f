"""fraud_model_rollback: make an earlier fraud model the champion again (and optionally its data).

Manual only. Param ``to`` is the MLflow run id, or a Pachyderm commit ``[project/]repo@commit``
whose training run is meant; the trigger form refuses anything else. The registered model's alias moves to that
run's version (no compute). With ``data`` on, every source repo's branch (here raw_data@master)
moves back to the commit that run was trained on, in one Pachyderm transaction, and the
pipelines re-run once. All of it or nothing: a failure leaves the alias and the branches as they
were. ``dry_run`` only logs the plan. What was done is returned and pushed as XCom ``lineage``.
Same as ``pachflow rollback --model-name fraud-detector --alias champion --to-run-id ID [--data]``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from pachflow.operators.rollback import (
    COMMIT_OF_TARGET,
    ROLLBACK_TARGET_PATTERN,
    RUN_ID_OF_TARGET,
    PachydermRollbackOperator,
)

with DAG(
    dag_id="fraud_model_rollback",
    description="Move the champion fraud model (and optionally its data) back to an earlier run",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["pachyderm", "mlflow", "rollback"],
    params={
        "to": Param(
            type="string",
            pattern=ROLLBACK_TARGET_PATTERN,
            title="Roll back to",
            description="The MLflow run id (32 hex characters) whose model becomes champion, "
            "or a Pachyderm commit [project/]repo@id whose training run does.",
        ),
        "data": Param(
            False,
            type="boolean",
            description="Also move the source repos' branches back to the commits that run was trained on.",
        ),
        "dry_run": Param(False, type="boolean", description="Only log the plan; change nothing."),
        "model_name": Param("fraud-detector", type="string", description="Registered MLflow model."),
        "alias": Param("champion", type="string", description="Alias to move."),
    },
    doc_md=__doc__,
) as dag:
    PachydermRollbackOperator(
        task_id="rollback_model",
        model_name="{{ params.model_name }}",
        alias="{{ params.alias }}",
        to_run_id=RUN_ID_OF_TARGET,
        to_commit=COMMIT_OF_TARGET,
        data="{{ params.data }}",
        dry_run="{{ params.dry_run }}",
    )
