"""`pachflow local airflow-ui` as a user meets it (issues 15 and 20).

The environment rules are checked as a function. The rest runs the real thing once per module: the
local stack (pachd-lite + MLflow), then `pachflow local airflow-ui` with a user's own AIRFLOW__*
settings; headless Chromium uses Admin → Connections; the last test stops it with one SIGTERM.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace

import psutil
import pytest

from pachflow_tools.local.airflow_connections import ADDED, KEPT, UNCHANGED, UPDATED
from pachflow_tools.local.airflow_env import airflow_environment, connections
from pachflow_tools.local.airflow_ui_env import executor_parallelism, ui_environment
from pachflow_tools.local.ports import find_free_port
from pachflow_tools.local.settings import LocalSettings
from tests.local.browser import HeadlessChromium
from tests.local.conftest import LocalCli

# What a user has in their shell; ALL_ADMINS also spares the browser a login.
USER_SETTINGS = {
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Europe/Berlin",
    "AIRFLOW__CORE__DAGS_FOLDER": "/not/the/stack/dags",  # required by the stack: replaced, and said so
}


def test_user_settings_win_except_the_stacks_required_ones(tmp_path):
    settings = LocalSettings(state_dir=tmp_path, pachd_port=31001, mlflow_port=31002, project=tmp_path)
    stack_conn = airflow_environment(settings)["AIRFLOW_CONN_MLFLOW_DEFAULT"]
    prepared = ui_environment(
        settings,
        port=8123,
        inherited={
            "AIRFLOW__CORE__TEST_CONNECTION": "Hidden",
            "AIRFLOW__API__HOST": "0.0.0.0",
            "AIRFLOW__CORE__DAGS_FOLDER": "/elsewhere",
            "AIRFLOW__API__PORT": "9999",
            "AIRFLOW_CONN_PACHYDERM_DEFAULT": '{"conn_type": "pachyderm", "host": "other"}',
            "AIRFLOW_CONN_MLFLOW_DEFAULT": stack_conn,  # as `eval "$(pachflow local env)"` leaves it
            "AIRFLOW_CONN_MINE": "http://mine",
            "AIRFLOW_VAR_MINE": "1",
        },
    )
    env = prepared.env
    assert env["AIRFLOW__CORE__TEST_CONNECTION"] == "Hidden"
    assert env["AIRFLOW__API__HOST"] == "0.0.0.0"
    assert env["AIRFLOW_CONN_MINE"] == "http://mine" and env["AIRFLOW_VAR_MINE"] == "1"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    assert env["AIRFLOW__API__PORT"] == "8123"
    assert env["AIRFLOW_HOME"] == str(settings.airflow_home)
    # The database holds the stack's two connections; a variable would hide every edit made in the UI.
    assert "AIRFLOW_CONN_PACHYDERM_DEFAULT" not in env and "AIRFLOW_CONN_MLFLOW_DEFAULT" not in env
    assert set(prepared.overridden) == {"AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__API__PORT"}
    assert prepared.ignored == ["AIRFLOW_CONN_PACHYDERM_DEFAULT"]
    notices = "\n".join(prepared.notices())
    assert "'/elsewhere'" in notices and "'9999'" in notices and "AIRFLOW_CONN_PACHYDERM_DEFAULT" in notices

    defaults = ui_environment(settings, port=8123, inherited={}).env
    assert defaults["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
    assert defaults["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert defaults["AIRFLOW__CORE__PARALLELISM"] == str(executor_parallelism())
    assert executor_parallelism(2) == 4 and executor_parallelism(64) == 32


def test_a_taken_port_names_the_ways_to_choose_another(local_cli):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        result = local_cli.run("airflow-ui", "--port", str(blocker.getsockname()[1]), timeout=120)
    assert result.returncode == 1, result.stderr
    assert "pass --port PORT or set AIRFLOW_PORT" in result.stderr
    assert "make airflow-ui AIRFLOW_PORT=PORT" in result.stderr and "None" not in result.stderr


class UiStack:
    """The local stack plus `pachflow local airflow-ui` started as a user would, with USER_SETTINGS."""

    def __init__(self, state_dir) -> None:
        self.cli = LocalCli(state_dir)
        self.port = find_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr = state_dir.parent / "airflow-ui.stderr"
        self.process: subprocess.Popen | None = None
        self.shell: dict[str, str] = {}

    def start(self) -> None:
        started = self.cli.up()
        assert started.returncode == 0, started.stderr
        # A user's shell: not the test suite's own Airflow settings (tests/conftest.py), but USER_SETTINGS.
        shell = {key: value for key, value in self.cli.env.items() if not key.startswith("AIRFLOW")}
        self.shell = {**shell, **USER_SETTINGS}
        env = {**self.shell, "AIRFLOW_PORT": str(self.port)}
        with open(self.stderr, "wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pachflow_tools.cli", "local", "airflow-ui",
                 "--state-dir", str(self.cli.state_dir)],
                stdout=sink, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + 400
        while "Airflow UI:" not in self.output():
            assert self.process.poll() is None, f"airflow-ui exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"the UI did not come up:\n{self.output()}"
            time.sleep(1)

    def output(self) -> str:
        return self.stderr.read_text(errors="replace")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.cli.run("down", timeout=60)


@pytest.fixture(scope="module")
def ui_stack(tmp_path_factory):
    stack = UiStack(tmp_path_factory.mktemp("ui") / "state")
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.mark.timeout(600)
def test_users_settings_reach_every_process_and_only_loopback_listens(ui_stack):
    output = ui_stack.output()
    assert "AIRFLOW__CORE__DAGS_FOLDER='/not/the/stack/dags'" in output and "replaced" in output
    assert f"connection pachyderm_default: {ADDED}" in output
    ui = psutil.Process(ui_stack.process.pid)
    components = ui.children(recursive=True)
    names = " ".join(" ".join(proc.cmdline()) for proc in components)
    assert all(name in names for name in ("api_server", "scheduler", "dag-processor", "triggerer")), names
    users = {key: value for key, value in USER_SETTINGS.items() if key != "AIRFLOW__CORE__DAGS_FOLDER"}
    # A process that retitles itself (setproctitle) overwrites what /proc shows of its environment.
    readable = [proc for proc in components if "AIRFLOW_HOME" in proc.environ()]
    assert len(set(readable) & set(ui.children())) >= 3, [proc.cmdline() for proc in readable]
    for proc in readable:
        assert {key: proc.environ().get(key) for key in users} == users, proc.cmdline()
    for proc in components:
        for conn in proc.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                assert conn.laddr.ip in ("127.0.0.1", "::1"), (proc.cmdline(), conn.laddr)
    # ALL_ADMINS reached the api-server: the API answers without a login.
    with urllib.request.urlopen(f"{ui_stack.url}/auth/token", timeout=30) as answer:
        assert json.load(answer)["access_token"]


@pytest.mark.timeout(600)
def test_connections_page_shows_and_tests_the_stacks_connections(ui_stack, chromium, tmp_path):
    row = "//tr[.//td[normalize-space(.)='{}']]//button[@aria-label='{}']"
    wrong_port = find_free_port()
    with HeadlessChromium(*chromium, tmp_path / "profile", tmp_path / "chromedriver.log") as page:
        page.open(f"{ui_stack.url}/connections")
        shown = page.wait_for_text("pachyderm_default", timeout=180)
        assert "mlflow_default" in shown
        page.click(row.format("pachyderm_default", "Test Connection"))
        shown = page.wait_for_text("Test Connection Successful")
        assert f"at grpc://127.0.0.1:{ui_stack.cli.pachd_port}" in shown
        page.click(row.format("mlflow_default", "Test Connection"))
        page.wait_for_text(f"Connected to MLflow at http://127.0.0.1:{ui_stack.cli.mlflow_port}")

        page.click(row.format("pachyderm_default", "Edit Connection"))
        page.replace_text("//input[@name='port']", str(wrong_port))
        page.click("//button[normalize-space(.)='Save']")
        page.wait_for_text(str(wrong_port))
        page.click(row.format("pachyderm_default", "Test Connection"))
        shown = page.wait_for_text("Test Connection Failed")
        page.screenshot(tmp_path / "failed-test.png")
        assert f"Cannot reach pachd at grpc://127.0.0.1:{wrong_port}" in shown, shown


def _token(base_url: str) -> str:
    with urllib.request.urlopen(f"{base_url}/auth/token", timeout=30) as answer:
        return json.load(answer)["access_token"]


def _dag_runs(base_url: str, dag_id: str) -> int:
    request = urllib.request.Request(
        f"{base_url}/api/v2/dags/{dag_id}/dagRuns", headers={"Authorization": f"Bearer {_token(base_url)}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)["total_entries"]


@pytest.mark.timeout(600)
def test_rollback_trigger_form_refuses_a_run_without_a_target(ui_stack, chromium, tmp_path):
    """The rollback DAG's one required param ``to`` is checked in the trigger form: left empty, the
    form says so and cannot be submitted; a value that is neither a run id nor a commit is refused
    by the server's param check. No run is created."""
    dialog = "//*[@role='dialog']"
    submit = f"{dialog}//button[normalize-space(.)='Trigger']"
    with HeadlessChromium(*chromium, tmp_path / "profile", tmp_path / "chromedriver.log") as page:
        page.open(f"{ui_stack.url}/dags/fraud_model_rollback")
        page.wait_for_text("fraud_model_rollback", timeout=180)
        page.click("//button[normalize-space(.)='Trigger']", timeout=180)
        page.wait_for_text("Roll back to")  # the param's title, in the form
        shown = page.wait_for_text("This field is required")
        assert "The MLflow run id (32 hex characters)" in shown
        page.screenshot(tmp_path / "rollback-form.png")
        assert not page.is_enabled(submit), "the trigger form submits a rollback without a target"
        page.click(submit)  # a user clicking anyway: nothing happens
        time.sleep(2)
        assert "This field is required" in page.page_text()
        # Neither a run id nor [project/]repo@commit: the server checks the pattern and refuses it.
        page.replace_text(f"{dialog}//input[@name='element_to']", "not-a-target")
        page.click(submit)
        page.wait_for_text("Failed to Trigger Dag")
        page.wait_for_text("Bad Request")  # Airflow's toast; the API's 400 names the param
        page.screenshot(tmp_path / "rollback-refused.png")
    assert _dag_runs(ui_stack.url, "fraud_model_rollback") == 0


def _patch_connection(base_url: str, conn_id: str, fields: dict) -> None:
    """Change a connection through Airflow's REST API, as the UI's form does."""
    token = _token(base_url)
    request = urllib.request.Request(
        f"{base_url}/api/v2/connections/{conn_id}",
        data=json.dumps({"connection_id": conn_id, **fields}).encode(),
        method="PATCH",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=60).close()


@pytest.mark.timeout(600)
def test_one_sigterm_stops_every_process_and_a_restart_keeps_the_users_edit(ui_stack):
    stack_fields = {"conn_type": "pachyderm", "host": "127.0.0.1", "port": ui_stack.cli.pachd_port}
    _patch_connection(ui_stack.url, "pachyderm_default", {**stack_fields, "extra": '{"project": "mine"}'})
    components = psutil.Process(ui_stack.process.pid).children(recursive=True)
    assert len(components) >= 4
    started = time.monotonic()
    ui_stack.process.send_signal(signal.SIGTERM)
    ui_stack.process.wait(timeout=15)
    assert time.monotonic() - started < 10
    alive = [proc for proc in components if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE]
    assert not alive, [proc.cmdline() for proc in alive]

    # The stack's connections written again, as on a restart with other ports: mlflow_default still
    # holds what the stack wrote and follows; pachyderm_default was edited and stays as the user left it.
    settings = LocalSettings.resolve(state_dir=ui_stack.cli.state_dir)
    moved = replace(settings, pachd_port=find_free_port(), mlflow_port=find_free_port())
    env = ui_environment(moved, port=ui_stack.port, inherited=ui_stack.shell).env
    record = str(settings.airflow_home / "pachflow_connections.json")
    outcomes = []
    for _ in range(2):
        synced = subprocess.run(
            [sys.executable, "-m", "pachflow_tools.local.airflow_connections",
             json.dumps(connections(moved)), record],
            env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        outcomes.append(json.loads(synced.stdout.strip().splitlines()[-1]))
    assert outcomes == [
        {"pachyderm_default": KEPT, "mlflow_default": UPDATED},
        {"pachyderm_default": KEPT, "mlflow_default": UNCHANGED},
    ]
