"""pachd and MLflow clients for the lineage views, from the same Airflow connections the tasks use.

``pachyderm_default`` (or ``PACHD_ADDRESS``) and ``mlflow_default`` (or ``MLFLOW_TRACKING_URI``).
MLflow's client would retry a dead server for minutes; a page should fail within seconds, so unless
the API server's environment says otherwise one request waits at most 15 s and is retried once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pachflow.exceptions import PachflowError
from pachflow.ui.graph import Services, scrub_text

PACHYDERM_CONN_ID = "pachyderm_default"
MLFLOW_CONN_ID = "mlflow_default"
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "15", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}


class NotConfigured(PachflowError, RuntimeError):
    """The API server has no MLflow connection to answer from; the message names it."""


@contextmanager
def services(node_page: Callable[[str], str]) -> Iterator[Services]:
    """Clients for one request; the pachd channel is closed afterwards."""
    from pachflow.exceptions import PachydermConnectionError
    from pachflow.hooks.mlflow import MLflowHook
    from pachflow.hooks.pachyderm import PachydermHook

    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    mlflow_hook = MLflowHook(MLFLOW_CONN_ID)
    try:
        tracking_uri = scrub_text(mlflow_hook.tracking_uri)
        mlflow_client = mlflow_hook.get_conn()
    except ValueError as err:
        raise NotConfigured(f"MLflow for the lineage views: {err}") from err
    hook = PachydermHook(PACHYDERM_CONN_ID, retry_attempts=2)
    try:
        client, project = hook.client, hook.project
        conn = hook._find_connection()
        console_url = (conn.extra_dejson.get("console_url") or "") if conn is not None else ""
    except PachydermConnectionError:  # no pachd configured: answer from MLflow alone
        client, project, console_url = None, "default", ""
    try:
        yield Services(
            mlflow=mlflow_client,
            client=client,
            project=project,
            tracking_uri=tracking_uri,
            console_url=console_url,
            node_page=node_page,
        )
    finally:
        hook.close()
