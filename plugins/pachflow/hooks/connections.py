"""Find an Airflow connection from task code and from plain scripts (the ``pachflow`` CLI)."""

from __future__ import annotations

from typing import Any


def find_connection(hook: Any, conn_id: str) -> Any | None:
    """The connection ``conn_id``, or None when it is defined nowhere.

    Inside a task the Task SDK answers (environment variables, secrets backends, the API
    server). In a plain script the SDK sees only environment variables and secrets backends,
    so the metadata database (where ``airflow connections add`` and ``pachflow local up`` put
    connections) is asked as well.
    """
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return hook.get_connection(conn_id)
    except AirflowNotFoundException:
        pass
    try:
        from airflow.models.connection import Connection as StoredConnection

        return StoredConnection.get_connection_from_secrets(conn_id)
    except Exception:  # not found, or no metadata database reachable from here
        return None
