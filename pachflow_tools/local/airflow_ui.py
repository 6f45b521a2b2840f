"""`pachflow local airflow-ui`: Airflow's api-server, scheduler, dag-processor and triggerer against the
local stack, with its connections in Airflow's database; one Ctrl-C or SIGTERM stops them all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rich.console import Console

from pachflow_tools.local.airflow_connections import KEPT
from pachflow_tools.local.airflow_env import connections
from pachflow_tools.local.airflow_processes import ComponentGroup
from pachflow_tools.local.airflow_ui_env import ui_environment
from pachflow_tools.local.ports import PortInUseError, require_free
from pachflow_tools.local.processes import tail
from pachflow_tools.local.settings import LocalSettings
from pachflow_tools.local.stack import StackError, status

ADMIN_USER = "admin"
PORT_ENV = "AIRFLOW_PORT"
DEFAULT_PORT = 8080
# --skip-serve-logs: Airflow's log servers bind every interface and are not needed when the api-server
# reads the task logs from this machine's disk.
COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


class Stopped(Exception):
    """SIGTERM arrived."""


def password_file(settings: LocalSettings) -> Path:
    return settings.airflow_home / "simple_auth_manager_passwords.json.generated"


def connections_record(settings: LocalSettings) -> Path:
    """What the UI stack last wrote into Airflow's database (to tell a user's edits from its own)."""
    return settings.airflow_home / "pachflow_connections.json"


def ui_port(flag: int | None) -> int:
    """The UI's port: ``--port``, else the AIRFLOW_PORT environment variable, else 8080."""
    raw = flag if flag is not None else os.environ.get(PORT_ENV) or DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{PORT_ENV}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise StackError(f"Airflow UI port {port} (--port or {PORT_ENV}) is outside 1-65535")
    return port


def _airflow_command() -> str:
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or shutil.which("airflow")
    if not airflow:
        raise StackError("the `airflow` command is not installed in this environment (run `make install`)")
    return airflow


def _prepare_database(settings: LocalSettings, airflow: str, env: dict[str, str], console: Console) -> None:
    """`airflow db migrate`, then the stack's connections into the database (user edits kept)."""
    log = settings.log_dir / "airflow-db-migrate.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as sink:
        migrated = subprocess.run([airflow, "db", "migrate"], env=env, stdout=sink, stderr=subprocess.STDOUT)
    if migrated.returncode != 0:
        raise StackError(f"`airflow db migrate` failed (log {log}):\n{tail(log)}")
    synced = subprocess.run(
        [sys.executable, "-m", "pachflow_tools.local.airflow_connections",
         json.dumps(connections(settings)), str(connections_record(settings))],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if synced.returncode != 0:
        raise StackError(f"writing the connections into Airflow's database failed:\n{synced.stderr[-2000:]}")
    outcome = json.loads(synced.stdout.strip().splitlines()[-1])
    for conn_id, state in outcome.items():
        hint = "; delete it in Admin → Connections to get the stack's again" if state == KEPT else ""
        console.print(f"connection {conn_id}: {state}{hint}", highlight=False)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped


def run_airflow_ui(settings: LocalSettings, *, port: int, console: Console) -> int:
    """Run Airflow's UI stack in the foreground until Ctrl-C/SIGTERM (or a component dies)."""
    report = status(settings)
    if not report["running"]:
        console.print(
            "[yellow]warning:[/] the local stack is not serving (run `pachflow local up` or `make demo` "
            "first); the UI starts, but DAG runs will fail to reach pachd-lite and MLflow."
        )
    prepared = ui_environment(settings, port=port)
    env = prepared.env
    for notice in prepared.notices():
        console.print(f"[yellow]note:[/] {notice}", highlight=False)
    try:
        require_free(
            env["AIRFLOW__API__HOST"], port, service="the Airflow UI", flag="--port", env_var=PORT_ENV
        )
    except PortInUseError as err:
        raise StackError(f"{err} (with make: make airflow-ui {PORT_ENV}=PORT)") from None
    airflow = _airflow_command()
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    url = env["AIRFLOW__API__BASE_URL"]
    group = ComponentGroup(settings.log_dir)
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        console.print(f"preparing Airflow's database in {settings.airflow_home} …")
        _prepare_database(settings, airflow, env, console)
        for name, args in COMPONENTS.items():
            group.start(name, [airflow, *args], env)
        console.print(f"Airflow components starting (logs: {group.log_file('*')})", highlight=False)
        return _watch(group, url, settings, report, console)
    except (KeyboardInterrupt, Stopped):
        return 0
    finally:
        # A second Ctrl-C must not cut the stop short and leave processes behind.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if group.processes:
            console.print("stopping Airflow …")
            killed = group.stop()
            console.print(f"Airflow stopped{f' ({len(killed)} processes killed)' if killed else ''}")
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _watch(group: ComponentGroup, url: str, settings: LocalSettings, report: dict, console: Console) -> int:
    """Announce the UI once it answers; return 1 when a component ends by itself."""
    announced = False
    while True:
        ended = group.exited()
        if ended:
            name, code = ended
            log = group.log_file(name)
            console.print(
                f"[red]error:[/] Airflow's {name} exited ({code}); log {log}:\n{tail(log)}", highlight=False
            )
            return 1
        if not announced and _answers(f"{url}/api/v2/monitor/health"):
            announced = True
            console.print(f"[green]Airflow UI:[/] {url}", highlight=False)
            if os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "").lower() != "true":
                console.print(
                    f"  log in as [bold]{ADMIN_USER}[/]; password in {password_file(settings)}",
                    highlight=False,
                )
            console.print(
                f"  MLflow UI: {report['mlflow_ui_url']}   · Ctrl-C stops Airflow; `make down` the rest"
            )
        time.sleep(0.5)
