"""The two services of the local stack: how each is started and how each is probed."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pachflow_tools.local.readiness import probe_mlflow, probe_pachd
from pachflow_tools.local.settings import ENV_MLFLOW_PORT, ENV_PACHD_PORT, LocalSettings


@dataclass(frozen=True)
class ServiceSpec:
    """How to run and check one service of the stack."""

    name: str
    title: str
    port: int
    port_flag: str
    port_env: str
    command: list[str]
    env: dict[str, str]
    probe: Callable[[], object]
    url: str
    startup_timeout: float


def _console_script(name: str, module: str) -> list[str]:
    """The console script next to this Python (same venv), else ``python -m module``."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


def allowed_hosts(settings: LocalSettings) -> str:
    """Host headers MLflow accepts: loopback names with any port, plus the bound host."""
    hosts = ["localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"]
    if settings.host not in ("127.0.0.1", "localhost", "0.0.0.0", "::", ""):
        hosts += [settings.host, f"{settings.host}:*"]
    return ",".join(hosts)


def pachd_spec(settings: LocalSettings, *, timeout: float) -> ServiceSpec:
    return ServiceSpec(
        name="pachd",
        title="pachd-lite",
        port=settings.pachd_port,
        port_flag="--pachd-port",
        port_env=ENV_PACHD_PORT,
        command=[
            *_console_script("pachd-lite", "pachd_lite.cli"),
            "serve",
            "--root",
            str(settings.pachd_root),
            "--host",
            settings.host,
            "--port",
            str(settings.pachd_port),
        ],
        env=dict(os.environ),
        probe=lambda: probe_pachd(settings.client_host, settings.pachd_port),
        url=settings.pachd_address,
        startup_timeout=timeout,
    )


def mlflow_spec(settings: LocalSettings, *, timeout: float) -> ServiceSpec:
    env = dict(os.environ)
    # The job runner serves GenAI features we do not use and starts extra processes: off by default.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return ServiceSpec(
        name="mlflow",
        title="MLflow tracking server",
        port=settings.mlflow_port,
        port_flag="--mlflow-port",
        port_env=ENV_MLFLOW_PORT,
        command=[
            *_console_script("mlflow", "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}",
            "--artifacts-destination",
            str(settings.mlflow_dir / "artifacts"),
            "--host",
            settings.host,
            "--port",
            str(settings.mlflow_port),
            "--workers",
            "1",
            "--allowed-hosts",
            allowed_hosts(settings),
        ],
        env=env,
        probe=lambda: probe_mlflow(settings.mlflow_tracking_uri),
        url=settings.mlflow_tracking_uri,
        startup_timeout=timeout,
    )


def all_specs(settings: LocalSettings, *, timeout: float) -> list[ServiceSpec]:
    return [pachd_spec(settings, timeout=timeout), mlflow_spec(settings, timeout=timeout)]
