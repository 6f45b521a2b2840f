"""A real `airflow api-server` with the simple auth manager (users admin and viewer) and pachflow's
plugin, on loopback, sharing the test session's Airflow database.

The plugin is found through the ``airflow.plugins`` entry point. When the installed pachflow
metadata predates that entry point (an editable install made before it was added), the entry
point declared in pyproject.toml is put on PYTHONPATH as a small dist-info, as a reinstall would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from importlib.metadata import entry_points
from pathlib import Path

from pachflow_tools.local.ports import find_free_port
from tests.local.browser import _stop, _wait_http

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"admin": "admin-pw", "viewer": "viewer-pw"}


def declared_plugin_entry_point() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["entry-points"]["airflow.plugins"]["pachflow"]


def entry_point_path(folder: Path) -> str | None:
    """A folder to put on PYTHONPATH when the installed metadata lacks the plugin entry point."""
    value = declared_plugin_entry_point()
    if any(ep.value == value for ep in entry_points(group="airflow.plugins")):
        return None
    dist = folder / "pachflow_plugin_entry_point-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pachflow-plugin-entry-point\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[airflow.plugins]\npachflow = {value}\n")
    return str(folder)


class ApiServer:
    """`airflow api-server` for one test module; ``token(user)`` logs in through ``/auth/token``."""

    def __init__(self, tmp: Path, connections: dict[str, str]) -> None:
        self.port = find_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "api-server.log"
        plugins = tmp / "plugins"  # empty: the repository's plugins/ is no plugins folder
        plugins.mkdir(exist_ok=True)
        passwords = tmp / "passwords.json"
        passwords.write_text(json.dumps(PASSWORDS))
        paths = [p for p in (entry_point_path(tmp / "meta"), os.environ.get("PYTHONPATH")) if p]
        self.env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__UNIT_TEST_MODE"}
        self.env.update(connections)
        self.env.update(
            {
                "PYTHONPATH": os.pathsep.join([*paths, str(ROOT / "plugins"), str(ROOT)]),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
            }
        )
        self.process: subprocess.Popen | None = None
        self._tokens: dict[str, str] = {}

    def __enter__(self) -> ApiServer:
        airflow = str(Path(sys.executable).with_name("airflow"))
        with open(self.log, "wb") as sink:
            self.process = subprocess.Popen(
                [airflow, "api-server", "--port", str(self.port), "--host", "127.0.0.1"],
                stdout=sink, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            )  # fmt: skip
        _wait_http(f"{self.url}/api/v2/monitor/health", timeout=240, process=self.process, log=self.log)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process:
            _stop(self.process)

    def token(self, user: str) -> str:
        if user not in self._tokens:
            status, body, _ = self.request(
                "POST", "/auth/token", json_body={"username": user, "password": PASSWORDS[user]}
            )
            assert status == 201, f"login of {user}: {status} {body[:300]}"
            self._tokens[user] = json.loads(body)["access_token"]
        return self._tokens[user]

    def request(
        self,
        method: str,
        path: str,
        *,
        user: str | None = None,
        json_body: dict | None = None,
        form: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        """(status, body, headers); ``user`` sends that user's token as a Bearer header."""
        from urllib.parse import urlencode

        hdrs = dict(headers or {})
        data = None
        if json_body is not None:
            data, hdrs["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        elif form is not None:
            data, hdrs["Content-Type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
        if user:
            hdrs["Authorization"] = f"Bearer {self.token(user)}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=120) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace"), dict(err.headers)

    def json(self, path: str, user: str = "admin") -> dict:
        status, body, _ = self.request("GET", path, user=user)
        assert status == 200, f"GET {path}: {status} {body[:500]}"
        return json.loads(body)
