"""Helpers for the local-stack tests: run the real `pachflow local` command in a temp state dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pachflow_tools.local.ports import find_free_port


class LocalCli:
    """Runs `pachflow local ...` as a separate process, as a user would, against one state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.pachd_port = find_free_port()
        self.mlflow_port = find_free_port()
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PACHFLOW_", "AIRFLOW_CONN_"))
        }

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pachflow_tools.cli", "local", *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def up(self) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--pachd-port", str(self.pachd_port), "--mlflow-port", str(self.mlflow_port))

    def status_json(self) -> tuple[int, dict]:
        result = self.run("status", "--json", timeout=60)
        return result.returncode, json.loads(result.stdout)


@pytest.fixture
def local_cli(tmp_path: Path):
    cli = LocalCli(tmp_path / "state")
    yield cli
    cli.run("down", timeout=60)  # never leave services behind, whatever the test did
