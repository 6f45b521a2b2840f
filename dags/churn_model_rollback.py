"""churn_model_rollback: make an earlier churn model the production one again, and its data with it.

Manual only. Param ``to`` is an MLflow run id or a commit ``research/events@id`` (any commit of
the lineage); the trigger form refuses anything else. The rollback is planned first (model version, alias, the commit of
every source repo — here ``events`` and ``labels``), then both repos' branches move back in one
Pachyderm transaction and the ``production`` alias moves to that run's version; if any step
fails, nothing that was not yet done is changed and the error says what was. With ``data``
off, only the alias moves; ``dry_run`` only logs the plan. The result is XCom ``lineage``.
Same as ``pachflow rollback --model-name churn-scorer --alias production --to-run-id ID --data``.
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
    dag_id="churn_model_rollback",
    description="Move churn-scorer@production (and research/events + labels) back to an earlier run",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["pachyderm", "mlflow", "rollback", "example"],
    params={
        "to": Param(
            type="string",
            pattern=ROLLBACK_TARGET_PATTERN,
            title="Roll back to",
            description="The MLflow run id (32 hex characters) whose model becomes production, "
            "or a Pachyderm commit [project/]repo@id whose training run does.",
        ),
        "data": Param(
            True, type="boolean", description="Also move the source repos back to that run's data."
        ),
        "dry_run": Param(False, type="boolean", description="Only log the plan; change nothing."),
        "model_name": Param(
            "churn-scorer", type="string", minLength=1, description="Registered MLflow model."
        ),
        "alias": Param("production", type="string", minLength=1, description="Alias to move."),
    },
    doc_md=__doc__,
) as dag:
    PachydermRollbackOperator(
        task_id="rollback",
        model_name="{{ params.model_name }}",
        alias="{{ params.alias }}",
        to_run_id=RUN_ID_OF_TARGET,
        to_commit=COMMIT_OF_TARGET,
        data="{{ params.data }}",
        dry_run="{{ params.dry_run }}",
        project="research",
    )
