"""PachydermHook: a pachyderm_sdk Client built from an Airflow connection."""

from __future__ import annotations

from airflow.sdk import BaseHook


class PachydermHook(BaseHook):
    """Talk to pachd (a real cluster or pachd-lite) through ``pachyderm_sdk``.

    :param pachyderm_conn_id: Airflow connection of type ``pachyderm``.
    """

    conn_name_attr = "pachyderm_conn_id"
    default_conn_name = "pachyderm_default"
    conn_type = "pachyderm"
    hook_name = "Pachyderm"

    def __init__(self, pachyderm_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pachyderm_conn_id = pachyderm_conn_id
