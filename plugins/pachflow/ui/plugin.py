"""The pachflow Airflow plugin: the lineage app and its "Lineage" tabs and navigation page.

Registered through the ``airflow.plugins`` entry point of the package, so installing pachflow is
enough. The FastAPI app is built only when the API server asks for it (``fastapi_apps``): workers,
the scheduler and the DAG processor load plugins too and need none of it.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin

URL_PREFIX = "/pachflow"

EXTERNAL_VIEWS = [
    {
        "name": "Lineage",
        "href": f"{URL_PREFIX}/lineage",
        "destination": "nav",
        "category": "browse",
        "url_route": "pachflow-lineage",
    },
    {
        "name": "Lineage",
        "href": f"{URL_PREFIX}/dag_run?dag_id={{DAG_ID}}&dag_run_id={{RUN_ID}}",
        "destination": "dag_run",
        "url_route": "pachflow-lineage-run",
    },
    {
        "name": "Lineage",
        "href": f"{URL_PREFIX}/task_instance?dag_id={{DAG_ID}}&dag_run_id={{RUN_ID}}&task_id={{TASK_ID}}",
        "destination": "task_instance",
        "url_route": "pachflow-lineage-task",
    },
]


class PachflowPlugin(AirflowPlugin):
    """Lineage of Pachyderm commits, pipeline jobs, MLflow runs and model versions in the Airflow UI."""

    name = "pachflow"
    external_views = [dict(v) for v in EXTERNAL_VIEWS]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from pachflow.ui.app import app

        return [{"app": app(), "url_prefix": URL_PREFIX, "name": "pachflow lineage"}]
