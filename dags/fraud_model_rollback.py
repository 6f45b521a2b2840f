"""fraud_model_rollback: make an earlier model the champion again (and optionally its raw data).

Manual only. Give ``to_run_id`` (an MLflow run) or ``to_commit`` (``repo@commit``); the
registered model's ``champion`` alias moves to that run's version (no compute). With
``data`` on, raw_data@master moves back to the raw commit that run was trained on, and the
pipelines re-run incrementally. What was done is returned and pushed as XCom ``lineage``.
Same as ``pachflow rollback --to-run-id ID [--data]``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="fraud_model_rollback",
    description="Move the champion model (and optionally raw_data@master) back to an earlier run",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["pachyderm", "mlflow", "rollback"],
    params={
        "to_run_id": Param(
            None, type=["null", "string"], description="MLflow run id whose model becomes champion."
        ),
        "to_commit": Param(
            None,
            type=["null", "string"],
            description="Or a Pachyderm commit, repo@id, whose training run becomes champion.",
        ),
        "data": Param(
            False, type="boolean", description="Also move raw_data@master back to that run's raw commit."
        ),
        "model_name": Param("fraud-detector", type="string", description="Registered MLflow model."),
        "alias": Param("champion", type="string", description="Alias to move."),
    },
    doc_md=__doc__,
) as dag:

    @task(multiple_outputs=False)  # a dict return would otherwise be split into one XCom per key
    def rollback_model(**context) -> dict:
        """Move the alias (and the raw branch when asked); record the action as XCom ``lineage``."""
        from pachflow.hooks.mlflow import MLflowHook
        from pachflow.hooks.pachyderm import PachydermHook
        from pachflow.rollback import rollback

        params = context["params"]
        if bool(params.get("to_run_id")) == bool(params.get("to_commit")):
            raise ValueError("set exactly one of the params to_run_id or to_commit")
        needs_pachd = bool(params.get("data") or params.get("to_commit"))
        hook = PachydermHook() if needs_pachd else None
        result = rollback(
            MLflowHook().get_conn(),
            hook.get_conn() if hook else None,
            to_run_id=params.get("to_run_id"),
            to_commit=params.get("to_commit"),
            model_name=params["model_name"],
            alias=params["alias"],
            data=bool(params.get("data")),
            project=hook.project if hook else "default",
            reason=f"Airflow {context['dag'].dag_id} run {context['run_id']}",
        )
        context["ti"].xcom_push(key="lineage", value=result)
        print(
            f"{result['model_name']}@{result['alias']}: version {result['from_version']} -> {result['to_version']} "
            f"(run {result['mlflow_run_id']}); raw data: {result['data'] or 'unchanged'}"
        )
        return result

    rollback_model()
