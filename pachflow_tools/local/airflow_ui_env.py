"""The environment of `pachflow local airflow-ui`: the user's own Airflow settings, the stack's defaults
under them and only the settings the stack cannot run without over them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from pachflow_tools.local.airflow_env import (
    MLFLOW_CONN_ID,
    PACHYDERM_CONN_ID,
    airflow_environment,
    with_own_bin_first,
)
from pachflow_tools.local.settings import LocalSettings

# The connections the UI stack keeps in Airflow's database; an AIRFLOW_CONN_* variable of the same id
# would hide every edit made in Admin → Connections (Airflow reads variables before the database).
DATABASE_CONNECTIONS = (PACHYDERM_CONN_ID, MLFLOW_CONN_ID)


def executor_parallelism(cpus: int | None = None) -> int:
    """Task slots (= LocalExecutor worker processes) for this machine: two per core, 4 to 32."""
    return max(4, min(32, 2 * (cpus or os.cpu_count() or 2)))


@dataclass
class UiEnvironment:
    """The environment for Airflow's processes and what of the user's environment did not reach it."""

    env: dict[str, str]
    overridden: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (user's, stack's)
    ignored: list[str] = field(default_factory=list)  # AIRFLOW_CONN_* of the database's connections

    def notices(self) -> list[str]:
        """One line per user setting the stack replaced or left out."""
        lines = [
            f"{key}={mine!r} from your environment is replaced by {ours!r} (the local UI stack needs it)"
            for key, (mine, ours) in self.overridden.items()
        ]
        lines += [
            f"{key} from your environment is left out: the UI stack keeps that connection in Airflow's "
            "database (Admin → Connections)"
            for key in self.ignored
        ]
        return lines


def required_settings(settings: LocalSettings, *, port: int) -> dict[str, str]:
    """What the UI stack cannot run without: its database, DAGs, plugins folder and chosen port."""
    stack = airflow_environment(settings)
    required = {
        key: value
        for key, value in stack.items()
        if key.startswith("AIRFLOW__") or key in ("AIRFLOW_HOME", "MLFLOW_TRACKING_URI", "PACHD_ADDRESS")
    }
    required["AIRFLOW__API__PORT"] = str(port)
    # The supervisor runs the scheduler's executor in-process; a remote executor would have no workers.
    required["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    return required


def default_settings(*, port: int) -> dict[str, str]:
    """The stack's choices a user's own AIRFLOW__* variable replaces."""
    return {
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__PARALLELISM": str(executor_parallelism()),
    }


def ui_environment(
    settings: LocalSettings, *, port: int, inherited: Mapping[str, str] | None = None
) -> UiEnvironment:
    """The user's environment (``os.environ`` by default) with the stack's defaults beneath it and its
    required settings above it; the stack's two connections come from the database, not variables."""
    inherited = dict(os.environ if inherited is None else inherited)
    stack_conns = airflow_environment(settings)
    result = UiEnvironment(env={})
    for conn_id in DATABASE_CONNECTIONS:
        key = f"AIRFLOW_CONN_{conn_id.upper()}"
        value = inherited.pop(key, None)
        if value is not None and value != stack_conns.get(key):
            result.ignored.append(key)
    env = {**default_settings(port=port), **inherited}
    for key, value in required_settings(settings, port=port).items():
        mine = inherited.get(key)
        if mine is not None and mine != value and key.startswith("AIRFLOW"):
            result.overridden[key] = (mine, value)
        env[key] = value
    result.env = with_own_bin_first(env)
    return result
