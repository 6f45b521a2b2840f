"""MLflowHook: an MLflow tracking client from the ``mlflow_default`` connection.

The connection type is pachflow's own ``mlflow`` (its form asks for the tracking URI and basic-auth
username/password); connections of type ``http`` work the same. A host that holds a full URI
(``http://mlflow:5000``) is used as it is; otherwise the schema (``http``/``https``), host, port
and path form the tracking URI. Login/password are passed to MLflow as basic-auth credentials.
"""

from __future__ import annotations

import logging
import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlflow import MlflowClient

TEST_TIMEOUT_SECONDS = 10


class MLflowHook(BaseHook):
    """Reach an MLflow tracking server described by an Airflow ``mlflow`` (or ``http``) connection.

    :param mlflow_conn_id: Airflow connection id; falls back to ``MLFLOW_TRACKING_URI`` when it does not exist.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
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
        send_mlflow_messages_to_logging()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def test_connection(self) -> tuple[bool, str]:
        """Back the Airflow UI's "Test" button: ask the tracking server for one experiment, once
        (MLflow's own client retries for minutes), naming the URI from the form."""
        import requests

        try:
            uri = self.tracking_uri
        except ValueError:
            return False, "This connection has no tracking URI (host)"
        credentials = self.credentials()
        auth = (
            (credentials["MLFLOW_TRACKING_USERNAME"], credentials["MLFLOW_TRACKING_PASSWORD"])
            if credentials
            else None
        )
        try:
            answer = requests.get(
                f"{uri}/api/2.0/mlflow/experiments/search",
                params={"max_results": 1},
                auth=auth,
                timeout=TEST_TIMEOUT_SECONDS,
            )
        except requests.RequestException as err:
            return False, f"Cannot reach MLflow at {uri}: {type(err).__name__}"
        if answer.status_code in (401, 403):
            return False, f"MLflow at {uri} refused the credentials (HTTP {answer.status_code})"
        if answer.status_code != 200 or "experiments" not in answer.text:
            return False, f"{uri} answered HTTP {answer.status_code}, not as an MLflow tracking server"
        return True, f"Connected to MLflow at {uri}"


class _InfoLines:
    """A text stream that logs each complete line at INFO."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger, self._pending = logger, ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            if line.strip():
                self.logger.info("%s", line)
        return len(text)

    def flush(self) -> None:
        pass


def send_mlflow_messages_to_logging() -> None:
    """Log MLflow's console messages ("Registered model ... already exists. Creating a new version")
    at their level through Python logging: MLflow writes them to stderr, which Airflow's task log
    shows as ERROR lines. Idempotent; affects this process only."""
    from mlflow.utils import logging_utils

    mlflow_logger = logging.getLogger("mlflow")
    mlflow_logger.handlers = []  # MLflow's own handler writes to stderr
    mlflow_logger.propagate = True
    # eprint() (used by mlflow.register_model) prints to this module-level stream.
    if not isinstance(logging_utils.MLFLOW_LOGGING_STREAM, _InfoLines):
        logging_utils.MLFLOW_LOGGING_STREAM = _InfoLines(mlflow_logger)


def tracking_uri_from_connection(conn: Any) -> str:
    """Build ``scheme://host[:port][/path]`` from a connection's host (a URI or a bare host), port and
    schema (``http``/``https`` is the scheme; anything else is a path, as in http connections)."""
    from urllib.parse import urlsplit, urlunsplit

    host = (conn.host or "").strip()
    if not host:
        raise ValueError(f"Airflow connection {conn.conn_id!r} has no host for the MLflow tracking server")
    path = ""
    if "://" not in host:
        scheme = (conn.schema or "http").strip() or "http"
        if scheme not in ("http", "https"):
            scheme, path = "http", "/" + scheme.strip("/")
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc
    if conn.port and parts.port is None:
        netloc = f"{netloc}:{conn.port}"
    return urlunsplit((parts.scheme, netloc, parts.path + path, parts.query, "")).rstrip("/")
