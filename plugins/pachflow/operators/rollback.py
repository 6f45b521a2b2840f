"""PachydermRollbackOperator: point a registered model's alias (and optionally the data) back to an earlier run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from pachflow.exceptions import ConfigurationError
from pachflow.hooks.unreachable import no_retry_when_unreachable
from pachflow.links import MLflowRunLink
from pachflow.settings import as_bool

_EMPTY = ("", "None", "none", "null")

# What a UI form can check for "roll back to": an MLflow run id (32 hex) or [project/]repo@commit.
# One param instead of two, because Airflow validates each param on its own and "exactly one of
# two" cannot be a param schema.
ROLLBACK_TARGET_PATTERN = (
    r"^([0-9a-f]{32}|[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?@[A-Za-z0-9_^~.-]+)$"
)
RUN_ID_OF_TARGET = "{{ params.to if '@' not in params.to else '' }}"
COMMIT_OF_TARGET = "{{ params.to if '@' in params.to else '' }}"


class PachydermRollbackOperator(BaseOperator):
    """Roll ``model_name@alias`` back to the version of ``to_run_id`` (or of the training behind
    ``to_commit``), all or nothing.

    The plan is resolved first and logged (model version, alias, and with ``data`` every source
    repo's branch and the commit the run was trained on); then the source branches move in one
    Pachyderm transaction, then the alias. Any failure leaves everything as it was, and the error
    says what was and was not changed. The result is pushed as XCom ``lineage`` and returned.

    :param model_name: registered MLflow model (templated).
    :param alias: alias of that model to move (templated); it must exist unless ``create_alias``.
    :param to_run_id: MLflow run whose version the alias goes back to (templated).
    :param to_commit: or ``[project/]repo@commit_id``: the training run behind that commit (templated).
        Exactly one of ``to_run_id``/``to_commit`` must be set once rendered.
    :param data: also move every source repo's branch back to the commit the run was trained on
        (templated; a rendered ``"True"``/``"False"`` is accepted); the pipelines then re-run once.
    :param dry_run: log and return the plan, change nothing (templated like ``data``).
    :param create_alias: create ``alias`` when the model does not have it (default: an error).
    :param project: Pachyderm project of the run's repos (templated); default: the connection's.
    :param pachyderm_conn_id: Airflow connection to pachd (needed with ``data`` or ``to_commit``).
    :param mlflow_conn_id: Airflow connection to the MLflow tracking server.
    :param reason: recorded in the registered model's ``pachflow.last_rollback`` tag (templated);
        default: the DAG and run id.
    """

    template_fields: Sequence[str] = (
        "model_name",
        "alias",
        "to_run_id",
        "to_commit",
        "data",
        "dry_run",
        "project",
        "reason",
    )
    ui_color = "#ffd6d6"
    operator_extra_links = (MLflowRunLink(),)

    def __init__(
        self,
        *,
        model_name: str,
        alias: str,
        to_run_id: str | None = None,
        to_commit: str | None = None,
        data: bool | str = False,
        dry_run: bool | str = False,
        create_alias: bool = False,
        project: str | None = None,
        pachyderm_conn_id: str = "pachyderm_default",
        mlflow_conn_id: str = "mlflow_default",
        reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not model_name:
            raise ConfigurationError(f"{self.task_id}: model_name is required (the registered MLflow model)")
        if not alias:
            raise ConfigurationError(f"{self.task_id}: alias is required (the model's alias to move)")
        literal = [v for v in (to_run_id, to_commit) if v and "{{" not in str(v)]
        if len(literal) == 2:
            raise ConfigurationError(
                f"{self.task_id}: give one of to_run_id or to_commit, not both "
                f"(to_run_id={to_run_id!r}, to_commit={to_commit!r})"
            )
        if not to_run_id and not to_commit:
            raise ConfigurationError(f"{self.task_id}: give one of to_run_id or to_commit")
        self.model_name = model_name
        self.alias = alias
        self.to_run_id = to_run_id
        self.to_commit = to_commit
        self.data = data
        self.dry_run = dry_run
        self.create_alias = create_alias
        self.project = project
        self.pachyderm_conn_id = pachyderm_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.reason = reason

    @no_retry_when_unreachable
    def execute(self, context: Context) -> dict[str, Any]:
        from pachflow.hooks.mlflow import MLflowHook
        from pachflow.hooks.pachyderm import PachydermHook
        from pachflow.hooks.unreachable import TASK_RETRY_SECONDS
        from pachflow.links import persist_mlflow_link
        from pachflow.rollback import apply_rollback, dry_run_result, plan_rollback

        to_run_id, to_commit = _blank_to_none(self.to_run_id), _blank_to_none(self.to_commit)
        if bool(to_run_id) == bool(to_commit):
            raise ConfigurationError(
                f"give exactly one of to_run_id or to_commit; rendered to_run_id={self.to_run_id!r}, "
                f"to_commit={self.to_commit!r}"
            )
        data, dry_run = as_bool("data", self.data), as_bool("dry_run", self.dry_run)
        mlflow_hook = MLflowHook(self.mlflow_conn_id)
        mlflow_client = mlflow_hook.get_conn()
        client, project = None, _blank_to_none(self.project)
        if data or to_commit:
            hook = PachydermHook(
                self.pachyderm_conn_id, project=project, retry_for_seconds=TASK_RETRY_SECONDS
            )
            client, project = hook.get_conn(), hook.project
        plan = plan_rollback(
            mlflow_client,
            client,
            model_name=self.model_name,
            alias=self.alias,
            to_run_id=to_run_id,
            to_commit=to_commit,
            data=data,
            project=project,
            create_alias=self.create_alias,
        )
        self.log.info(
            "Rollback plan%s:\n%s", " (dry run: nothing will change)" if dry_run else "", plan.describe()
        )
        if dry_run:
            result = dry_run_result(plan)
        else:
            reason = self.reason or f"Airflow {context['dag'].dag_id} run {context['run_id']}"
            result = apply_rollback(plan, mlflow_client, client, reason=reason)
            self.log.info("%s", outcome_line(result))
        context["ti"].xcom_push(key="lineage", value=result)
        persist_mlflow_link(
            context,
            tracking_uri=mlflow_hook.tracking_uri,
            experiment_id=str(plan.lineage.get("mlflow_experiment_id") or ""),
            run_id=plan.mlflow_run_id,
        )
        return result


def outcome_line(result: dict[str, Any]) -> str:
    """One line saying what an applied rollback changed; a rollback to the alias's current holder
    says that nothing moved."""
    alias = f"{result['model_name']}@{result['alias']}"
    branches = sum(1 for b in result["data"] or [] if b["moved"])
    if not result["alias_moved"] and not branches:
        same_data = ", and every source branch is already at its commit" if result["data"] else ""
        return f"Nothing to roll back: {alias} already holds version {result['to_version']}{same_data}"
    if not result["alias_moved"]:
        change = f"{alias} already holds version {result['to_version']} (not moved)"
    elif result["from_version"] is None:
        change = f"alias {alias} created on version {result['to_version']}"
    else:
        change = f"alias {alias} moved from version {result['from_version']} to {result['to_version']}"
    rerun = f", pipelines re-run in commit set {result['commit_set']}" if result["commit_set"] else ""
    return f"Rolled back: {change}, {branches} branch(es) moved{rerun}"


def _blank_to_none(value: Any) -> str | None:
    """A rendered template of an unset param is ``""`` or ``"None"``: both mean not given."""
    if value is None or str(value).strip() in _EMPTY:
        return None
    return str(value).strip()
