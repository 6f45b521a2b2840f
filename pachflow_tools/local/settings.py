"""Where the local stack lives and which ports it uses: flags first, then environment, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pachflow_tools

DEFAULT_PACHD_PORT = 30650
DEFAULT_MLFLOW_PORT = 5000
DEFAULT_HOST = "127.0.0.1"

ENV_STATE_DIR = "PACHFLOW_LOCAL_DIR"
ENV_PACHD_PORT = "PACHFLOW_PACHD_PORT"
ENV_MLFLOW_PORT = "PACHFLOW_MLFLOW_PORT"
ENV_HOST = "PACHFLOW_LOCAL_HOST"


def project_root() -> Path:
    """The repository this pachflow was installed from (editable install), else the working directory."""
    candidate = Path(pachflow_tools.__file__).resolve().parents[1]
    if (candidate / "pyproject.toml").is_file() and (candidate / "dags").is_dir():
        return candidate
    return Path.cwd()


def _port_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ValueError(f"environment variable {name}={raw!r} is outside 1-65535")
    return port


@dataclass(frozen=True)
class LocalSettings:
    """Paths and addresses of one local stack; everything derives from ``state_dir``."""

    state_dir: Path
    host: str = DEFAULT_HOST
    pachd_port: int = DEFAULT_PACHD_PORT
    mlflow_port: int = DEFAULT_MLFLOW_PORT
    project: Path = Path(".")

    @classmethod
    def resolve(
        cls,
        state_dir: str | os.PathLike[str] | None = None,
        pachd_port: int | None = None,
        mlflow_port: int | None = None,
        host: str | None = None,
    ) -> LocalSettings:
        """Combine explicit values with PACHFLOW_* environment variables and the defaults."""
        root = project_root()
        chosen_dir = state_dir or os.environ.get(ENV_STATE_DIR) or root / ".local"
        return cls(
            state_dir=Path(chosen_dir).expanduser().resolve(),
            host=host or os.environ.get(ENV_HOST) or DEFAULT_HOST,
            pachd_port=pachd_port or _port_from_env(ENV_PACHD_PORT, DEFAULT_PACHD_PORT),
            mlflow_port=mlflow_port or _port_from_env(ENV_MLFLOW_PORT, DEFAULT_MLFLOW_PORT),
            project=root,
        )

    # -- files under the state dir ---------------------------------------------------------
    @property
    def stack_file(self) -> Path:
        """Record of what `up` started (ports, pids), read by `status` and `down`."""
        return self.state_dir / "stack.json"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pachd_root(self) -> Path:
        return self.state_dir / "pachd"

    @property
    def mlflow_dir(self) -> Path:
        return self.state_dir / "mlflow"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def airflow_env_file(self) -> Path:
        return self.state_dir / "airflow.env"

    @property
    def connections_file(self) -> Path:
        return self.state_dir / "connections.json"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    # -- addresses -------------------------------------------------------------------------
    @property
    def client_host(self) -> str:
        """The address clients dial: a wildcard bind is reached through loopback."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def pachd_address(self) -> str:
        return f"grpc://{self.client_host}:{self.pachd_port}"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"http://{self.client_host}:{self.mlflow_port}"
