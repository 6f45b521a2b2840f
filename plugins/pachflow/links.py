"""Extra links on pachflow tasks: "MLflow run" and "Pachyderm commit".

``get_link`` runs on the worker at task end and reads what the task pushed to XCom during
``execute`` (keys below); the API server only shows the stored URL. A link is empty when the
task has nothing to point at. Without a console URL on the Pachyderm connection, "Pachyderm
commit" opens pachflow's own lineage view of the commit (``/pachflow/lineage`` of the API server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

MLFLOW_RUN_KEY = "mlflow_run"
PACHYDERM_COMMIT_KEY = "pachyderm_commit"


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


LINEAGE_VIEW_PATH = "/pachflow/lineage"


def lineage_view_url(base_url: str, project: str, repo: str, commit_id: str) -> str:
    """pachflow's lineage page of one commit on the Airflow API server at ``base_url``."""
    from urllib.parse import quote

    return f"{base_url.rstrip('/')}{LINEAGE_VIEW_PATH}?commit={quote(f'{project}/{repo}@{commit_id}', safe='/@')}"


def console_commit_url(console_url: str, project: str, repo: str, commit_id: str) -> str:
    """Pachyderm Console's file browser of one commit."""
    return f"{console_url.rstrip('/')}/project/{project}/repos/{repo}/commit/{commit_id}/"


def _xcom(ti_key: TaskInstanceKey, key: str) -> Any:
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_value(ti_key=ti_key, key=key)


class MLflowRunLink(BaseOperatorLink):
    """Button to the MLflow run a task trained or recorded."""

    name = "MLflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        info = _xcom(ti_key, MLFLOW_RUN_KEY)
        if not info or not info.get("run_id") or not info.get("tracking_uri"):
            return ""
        return mlflow_run_url(info["tracking_uri"], info.get("experiment_id") or "0", info["run_id"])


class PachydermCommitLink(BaseOperatorLink):
    """Button to the task's commit in Pachyderm Console (``console_url`` extra of the connection),
    else to its lineage view in Airflow (the API server's ``[api] base_url``)."""

    name = "Pachyderm commit"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        info = _xcom(ti_key, PACHYDERM_COMMIT_KEY)
        if not info or not info.get("commit_id"):
            return ""
        if info.get("console_url"):
            return console_commit_url(info["console_url"], info["project"], info["repo"], info["commit_id"])
        from airflow.sdk.configuration import conf

        base_url = conf.get("api", "base_url", fallback="") or ""
        return lineage_view_url(base_url, info["project"], info["repo"], info["commit_id"])


def persist_mlflow_link(context: Context, *, tracking_uri: str, experiment_id: str, run_id: str) -> None:
    context["ti"].xcom_push(
        key=MLFLOW_RUN_KEY,
        value={"tracking_uri": tracking_uri, "experiment_id": experiment_id, "run_id": run_id},
    )


def persist_commit_link(
    context: Context, hook: Any, repo: str | None, commit_id: str | None, *, project: str | None = None
) -> None:
    """Store what the "Pachyderm commit" link needs (the console URL comes from the connection).

    ``project`` is the repo's project; default: the hook's.
    """
    if not repo or not commit_id:
        return
    console = ""
    conn = hook._find_connection() if hasattr(hook, "_find_connection") else None
    if conn is not None:
        console = conn.extra_dejson.get("console_url") or ""
    context["ti"].xcom_push(
        key=PACHYDERM_COMMIT_KEY,
        value={
            "console_url": console,
            "project": project or hook.project,
            "repo": repo,
            "commit_id": commit_id,
        },
    )
