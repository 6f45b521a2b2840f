"""MLflowHook: an MLflow tracking client from the ``mlflow_default`` connection (type ``http``).

The connection's schema (``http``/``https``), host, port and path form the tracking URI;
login/password are passed to MLflow as basic-auth credentials. A host that already holds a
full URI (``http://mlflow:5000``) is used as it is.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlflow import MlflowClient


class MLflowHook(BaseHook):
    """Reach an MLflow tracking server described by an Airflow ``http`` connection.

    :param mlflow_conn_id: Airflow connection id; falls back to ``MLFLOW_TRACKING_URI`` when it does not exist.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "http"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def _connection(self):
        from pachflow.hooks.connections import find_connection

        return find_connection(self, self.mlflow_conn_id)

    @cached_property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI (without credentials)."""
        conn = self._connection
        if conn is None:
            uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not uri:
                raise ValueError(
                    f"No Airflow connection {self.mlflow_conn_id!r} and no MLFLOW_TRACKING_URI: "
                    "tell pachflow where the MLflow tracking server is."
                )
            return uri.rstrip("/")
        return tracking_uri_from_connection(conn)

    def credentials(self) -> dict[str, str]:
        """Environment variables MLflow reads for basic auth (empty without a login)."""
        conn = self._connection
        if conn is None or not conn.login:
            return {}
        return {"MLFLOW_TRACKING_USERNAME": conn.login, "MLFLOW_TRACKING_PASSWORD": conn.password or ""}

    def get_conn(self) -> MlflowClient:
        """Return an ``MlflowClient`` for the tracking server (credentials exported for this process)."""
        from mlflow import MlflowClient

        os.environ.update(self.credentials())
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def test_connection(self) -> tuple[bool, str]:
        """Back the Airflow UI's "Test" button: list one experiment."""
        try:
            self.get_conn().search_experiments(max_results=1)
        except Exception as err:
            return False, f"MLflow at {self.tracking_uri}: {err}"
        return True, f"Connected to MLflow at {self.tracking_uri}"


def tracking_uri_from_connection(conn: Any) -> str:
    """Build ``scheme://host[:port][/path]`` from an http connection's fields."""
    host = (conn.host or "").strip()
    if not host:
        raise ValueError(f"Airflow connection {conn.conn_id!r} has no host for the MLflow tracking server")
    if "://" in host:
        uri = host
        if conn.port and host.count(":") == 1:
            uri = f"{host}:{conn.port}"
        return uri.rstrip("/")
    scheme = (conn.schema or "http").strip() or "http"
    if scheme not in (
        "http",
        "https",
    ):  # http connections use `schema` as the scheme; anything else is a path
        path, scheme = "/" + scheme.strip("/"), "http"
    else:
        path = ""
    port = f":{conn.port}" if conn.port else ""
    return f"{scheme}://{host}{port}{path}".rstrip("/")
