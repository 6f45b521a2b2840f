"""The Airflow settings of the local stack: connections and folders, as env vars and a connections file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pachflow_tools.local.settings import LocalSettings

PACHYDERM_CONN_ID = "pachyderm_default"
MLFLOW_CONN_ID = "mlflow_default"


def connections(settings: LocalSettings, *, project: str = "default") -> dict[str, dict]:
    """``pachyderm_default`` and ``mlflow_default`` for this stack, in Airflow's JSON connection form."""
    return {
        PACHYDERM_CONN_ID: {
            "conn_type": "pachyderm",
            "host": settings.client_host,
            "port": settings.pachd_port,
            "extra": {"project": project},
        },
        # The port apart from the URI: the UI's Test button (Airflow 3.3) refuses a connection without one.
        MLFLOW_CONN_ID: {
            "conn_type": "mlflow",
            "host": f"http://{settings.client_host}",
            "port": settings.mlflow_port,
        },
    }


def airflow_environment(settings: LocalSettings) -> dict[str, str]:
    """Environment variables that point Airflow (and plain scripts) at the local stack."""
    conns = connections(settings)
    return {
        "AIRFLOW_HOME": str(settings.airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{settings.airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.project / "dags"),
        # Not the repository's plugins/: Airflow imports every .py file of its plugins folder as a
        # top-level module named after the file, so plugins/pachflow/hooks/mlflow.py would shadow the
        # real `mlflow` package. pachflow is an installed provider and needs no plugins folder.
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.airflow_home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_PACHYDERM_DEFAULT": json.dumps(conns[PACHYDERM_CONN_ID], separators=(",", ":")),
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(conns[MLFLOW_CONN_ID], separators=(",", ":")),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "PACHD_ADDRESS": settings.pachd_address,
    }


def process_environment(settings: LocalSettings) -> dict[str, str]:
    """This process's environment with every inherited Airflow setting replaced by the local stack's,
    for running `airflow ...` commands (a test's or a developer's own Airflow config must not leak in)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and key != "AIRFLOW_HOME"
    }
    env.update(airflow_environment(settings))
    return with_own_bin_first(env)


def with_own_bin_first(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this Python's bin folder first on PATH, as when the venv is activated: Airflow
    and pachd-lite's transforms start `airflow`/`python3` by name."""
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(
        [bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir)]
    )
    return env


def _quote(value: str) -> str:
    """Single-quote for POSIX shells and python-dotenv alike."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def write_airflow_files(settings: LocalSettings) -> tuple[Path, Path]:
    """Write ``airflow.env`` (source it, or read with python-dotenv) and ``connections.json``
    (for ``dag.test(conn_file_path=...)``); return both paths."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    (settings.airflow_home / "plugins").mkdir(parents=True, exist_ok=True)
    env = airflow_environment(settings)
    lines = [
        "# Written by `pachflow local up`: the local stack's Airflow settings.",
        f'# Use: set -a; source {settings.airflow_env_file}; set +a   (or: eval "$(pachflow local env)")',
    ]
    lines += [f"{key}={_quote(value)}" for key, value in env.items()]
    _atomic_write(settings.airflow_env_file, "\n".join(lines) + "\n")
    _atomic_write(settings.connections_file, json.dumps(connections(settings), indent=2) + "\n")
    return settings.airflow_env_file, settings.connections_file


def read_env_file(path: Path) -> dict[str, str]:
    """Read back an env file written by :func:`write_airflow_files`."""
    from dotenv import dotenv_values

    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
