"""`pachflow local up | status | down` against real processes: pachd-lite, MLflow, process groups."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request

import psutil
import pytest

from pachflow_tools.local.airflow_env import read_env_file, write_airflow_files
from pachflow_tools.local.processes import start_detached, stop
from pachflow_tools.local.settings import LocalSettings


def _group_alive(pgid: int) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


def test_up_status_down_with_real_services(local_cli, tmp_path):
    """Needs a working `pachd-lite serve`: the whole user path, checked through each service's API."""
    started = local_cli.up()
    assert started.returncode == 0, f"`pachflow local up` failed:\n{started.stderr}"
    assert "serves" in started.stderr  # progress was shown

    code, report = local_cli.status_json()
    assert code == 0, report
    assert report["pachd_address"] == f"grpc://127.0.0.1:{local_cli.pachd_port}"
    assert report["mlflow_tracking_uri"] == f"http://127.0.0.1:{local_cli.mlflow_port}"
    pids = {name: service["pid"] for name, service in report["services"].items()}
    assert all(service["alive"] and service["serving"] for service in report["services"].values())

    # pachd-lite answers the unmodified SDK client.
    from pachyderm_sdk import Client

    assert Client(host="127.0.0.1", port=local_cli.pachd_port).get_version().major == 2
    # MLflow: SQLite backend and proxied artifacts under the state dir.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=report["mlflow_tracking_uri"])
    run = client.create_run(client.create_experiment("local-stack-check"))
    client.log_text(run.info.run_id, "hello", "note.txt")
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert list((local_cli.state_dir / "mlflow" / "artifacts").rglob("note.txt"))
    assert (local_cli.state_dir / "mlflow" / "mlflow.db").exists()

    env = read_env_file(local_cli.state_dir / "airflow.env")
    assert json.loads(env["AIRFLOW_CONN_PACHYDERM_DEFAULT"])["port"] == local_cli.pachd_port

    stopped = local_cli.run("down")
    assert stopped.returncode == 0, stopped.stderr
    for pid in pids.values():
        assert not _group_alive(pid), f"processes of group {pid} survived `down`"
    code, report = local_cli.status_json()
    assert code == 3
    assert not any(service["alive"] for service in report["services"].values())
    again = local_cli.run("down")
    assert again.returncode == 0 and "nothing to stop" in again.stderr


def test_up_refuses_a_taken_port_and_starts_nothing(local_cli):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", local_cli.mlflow_port))
        blocker.listen()
        result = local_cli.up()
    assert result.returncode == 1
    assert f"port {local_cli.mlflow_port}" in result.stderr
    assert "--mlflow-port" in result.stderr
    code, report = local_cli.status_json()
    assert code == 3
    assert all(service["pid"] is None for service in report["services"].values())


def test_status_of_a_stack_never_started(local_cli):
    code, report = local_cli.status_json()
    assert code == 3
    assert report["pachd_address"].startswith("grpc://127.0.0.1:")
    assert report["mlflow_tracking_uri"].startswith("http://127.0.0.1:")
    assert report["running"] is False


def test_a_service_that_dies_fails_up_and_the_other_is_stopped(tmp_path, monkeypatch):
    """pachd is replaced by a command that exits at once; real MLflow starts and must be stopped again."""
    import pachflow_tools.local.services as services
    from pachflow_tools.local.ports import find_free_port
    from pachflow_tools.local.stack import StackError, StackRecord, up

    real = services._console_script
    crash = [sys.executable, "-c", "import sys; print('pachd crashed: disk full'); sys.exit(3)"]
    monkeypatch.setattr(
        services,
        "_console_script",
        lambda name, module: crash if name == "pachd-lite" else real(name, module),
    )
    settings = LocalSettings.resolve(
        state_dir=tmp_path / "state", pachd_port=find_free_port(), mlflow_port=find_free_port()
    )
    with pytest.raises(StackError) as failure:
        up(settings, timeout=60)
    message = str(failure.value)
    assert "pachd-lite failed to start" in message
    assert "pachd crashed: disk full" in message  # the log tail
    assert str(settings.log_dir / "pachd.log") in message
    record = StackRecord.load(settings)
    assert record is not None and record.services == {}
    assert (settings.log_dir / "mlflow.log").exists()  # MLflow had been started ...
    leftovers = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if str(settings.state_dir) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []  # ... and was stopped with all its processes
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{settings.mlflow_tracking_uri}/health", timeout=2)


def test_stop_terminates_then_kills_the_whole_group(tmp_path):
    """A child that ignores SIGTERM is killed after the timeout; stopping again is a no-op."""
    script = (
        "import signal, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'])\n"
        "time.sleep(300)\n"
    )
    record = start_detached(
        "sleeper",
        [sys.executable, "-c", script],
        log_file=tmp_path / "sleeper.log",
        pid_file=tmp_path / "sleeper.pid",
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 10
    while len(_group_alive(record.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_group_alive(record.pid)) == 2
    assert stop(record, timeout=1.0) == "killed"
    assert _group_alive(record.pid) == []
    assert stop(record, timeout=1.0) == "not running"


def test_airflow_reads_the_written_connections(tmp_path, monkeypatch):
    """The env file and connections.json resolve, through Airflow itself, to both local services."""
    settings = LocalSettings.resolve(state_dir=tmp_path / "state", pachd_port=31999, mlflow_port=5999)
    env_file, conn_file = write_airflow_files(settings)
    env = read_env_file(env_file)
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW_HOME"] == str(settings.airflow_home)
    for key in ("AIRFLOW_CONN_PACHYDERM_DEFAULT", "AIRFLOW_CONN_MLFLOW_DEFAULT"):
        monkeypatch.setenv(key, env[key])

    from airflow.models.connection import Connection
    from airflow.secrets.local_filesystem import load_connections_dict

    pachd = Connection.get_connection_from_secrets("pachyderm_default")
    assert (pachd.conn_type, pachd.host, pachd.port) == ("pachyderm", "127.0.0.1", 31999)
    assert pachd.extra_dejson == {"project": "default"}
    mlflow_conn = Connection.get_connection_from_secrets("mlflow_default")
    assert (mlflow_conn.conn_type, mlflow_conn.host, mlflow_conn.port) == ("mlflow", "http://127.0.0.1", 5999)
    from pachflow.hooks.mlflow import tracking_uri_from_connection

    assert tracking_uri_from_connection(mlflow_conn) == "http://127.0.0.1:5999"
    from_file = load_connections_dict(str(conn_file))
    assert from_file["pachyderm_default"].port == 31999
    assert from_file["mlflow_default"].port == 5999


def test_up_without_port_flags_keeps_the_ports_of_the_running_stack(tmp_path, monkeypatch):
    """`make demo` after `pachflow local up --mlflow-port N` reuses N instead of failing."""
    from pachflow_tools.local.stack import StackRecord, settings_for_up

    for name in ("PACHFLOW_PACHD_PORT", "PACHFLOW_MLFLOW_PORT", "PACHFLOW_LOCAL_HOST"):
        monkeypatch.delenv(name, raising=False)
    running = LocalSettings.resolve(state_dir=tmp_path / "state", pachd_port=31001, mlflow_port=5002)
    sleeper = start_detached(
        "pachd",
        [sys.executable, "-c", "import time; time.sleep(300)"],
        log_file=running.log_dir / "pachd.log",
        pid_file=running.run_dir / "pachd.pid",
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    try:
        StackRecord(settings=running, services={"pachd": sleeper}).save()
        reused = settings_for_up(state_dir=running.state_dir)
        assert (reused.pachd_port, reused.mlflow_port) == (31001, 5002)
        chosen = settings_for_up(state_dir=running.state_dir, mlflow_port=5003)
        assert chosen.mlflow_port == 5003
    finally:
        stop(sleeper, timeout=2)
    stopped = settings_for_up(state_dir=running.state_dir)
    assert (stopped.pachd_port, stopped.mlflow_port) == (30650, 5000)  # nothing runs: the defaults
