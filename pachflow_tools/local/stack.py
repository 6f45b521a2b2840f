"""`up`, `down` and `status` of the local stack (pachd-lite + MLflow), with its record in stack.json."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console

from pachflow_tools.local.airflow_env import write_airflow_files
from pachflow_tools.local.ports import PortInUseError, require_free
from pachflow_tools.local.processes import ServiceRecord, is_alive, start_detached, stop, tail
from pachflow_tools.local.progress import WaitDisplay
from pachflow_tools.local.readiness import ServiceNotReady, wait_until_ready
from pachflow_tools.local.services import ServiceSpec, all_specs
from pachflow_tools.local.settings import ENV_HOST, ENV_MLFLOW_PORT, ENV_PACHD_PORT, LocalSettings


class StackError(RuntimeError):
    """`up` failed; the message names the service, the reason and its log file."""


@dataclass
class StackRecord:
    """Contents of ``stack.json``: the settings the stack was started with and its processes."""

    settings: LocalSettings
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    started_at: float = 0.0

    def save(self) -> None:
        data = {
            "state_dir": str(self.settings.state_dir),
            "host": self.settings.host,
            "pachd_port": self.settings.pachd_port,
            "mlflow_port": self.settings.mlflow_port,
            "project": str(self.settings.project),
            "started_at": self.started_at,
            "services": {name: record.to_json() for name, record in self.services.items()},
        }
        path = self.settings.stack_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, settings: LocalSettings) -> StackRecord | None:
        """The record in ``settings.state_dir``, with the ports it was started with, or None."""
        path = settings.stack_file
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            recorded = replace(
                settings,
                host=data["host"],
                pachd_port=int(data["pachd_port"]),
                mlflow_port=int(data["mlflow_port"]),
                project=Path(data.get("project", settings.project)),
            )
            services = {name: ServiceRecord.from_json(rec) for name, rec in data["services"].items()}
        except (ValueError, KeyError, TypeError) as err:
            raise StackError(f"{path} is not a valid stack record ({err}); delete it and retry") from err
        return cls(settings=recorded, services=services, started_at=float(data.get("started_at", 0)))


def _fail_message(spec: ServiceSpec, record: ServiceRecord, reason: str) -> str:
    return (
        f"{spec.title} failed to start: {reason}\n"
        f"  command: {' '.join(record.command)}\n"
        f"  log: {record.log_file}\n"
        f"  last log lines:\n{_indent(tail(record.log_file))}"
    )


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def settings_for_up(
    state_dir: str | os.PathLike[str] | None = None,
    pachd_port: int | None = None,
    mlflow_port: int | None = None,
    host: str | None = None,
) -> LocalSettings:
    """Settings for `up`: the ports a running stack already uses, unless flags or env choose others."""
    settings = LocalSettings.resolve(state_dir, pachd_port, mlflow_port, host)
    explicit = any(value is not None for value in (pachd_port, mlflow_port, host)) or any(
        os.environ.get(name) for name in (ENV_PACHD_PORT, ENV_MLFLOW_PORT, ENV_HOST)
    )
    record = None if explicit else StackRecord.load(settings)
    if record is not None and any(is_alive(service) for service in record.services.values()):
        return record.settings
    return settings


def up(settings: LocalSettings, *, timeout: float = 180.0, console: Console | None = None) -> StackRecord:
    """Start whatever of the stack is not running, wait until each serves, write Airflow settings.

    Raises StackError (and stops what this call started) when a port is taken or a service does
    not come up.
    """
    console = console or Console(stderr=True)
    existing = StackRecord.load(settings)
    running = {n: r for n, r in (existing.services if existing else {}).items() if is_alive(r)}
    if existing and running:
        recorded = existing.settings
        if (recorded.pachd_port, recorded.mlflow_port, recorded.host) != (
            settings.pachd_port,
            settings.mlflow_port,
            settings.host,
        ):
            raise StackError(
                f"the local stack in {settings.state_dir} already runs with pachd port "
                f"{recorded.pachd_port} and MLflow port {recorded.mlflow_port} on {recorded.host}; "
                f"run `pachflow local down` first to change them"
            )
    record = StackRecord(settings=settings, services=dict(running), started_at=time.time())
    specs = all_specs(settings, timeout=timeout)
    to_start = [spec for spec in specs if spec.name not in running]
    for spec in specs:
        if spec.name in running:
            console.print(f"[green]✓[/] {spec.title} already running (pid {running[spec.name].pid})")

    try:
        for spec in to_start:
            require_free(
                settings.host, spec.port, service=spec.title, flag=spec.port_flag, env_var=spec.port_env
            )
    except PortInUseError as err:
        raise StackError(str(err)) from None

    for directory in (settings.pachd_root, settings.mlflow_dir, settings.log_dir, settings.run_dir):
        directory.mkdir(parents=True, exist_ok=True)
    started: dict[str, ServiceRecord] = {}
    for spec in to_start:
        console.print(f"starting {spec.title} on {spec.url} (log: {settings.log_dir / (spec.name + '.log')})")
        started[spec.name] = start_detached(
            spec.name,
            spec.command,
            log_file=settings.log_dir / f"{spec.name}.log",
            pid_file=settings.run_dir / f"{spec.name}.pid",
            env=spec.env,
            cwd=settings.state_dir,
        )
    record.services.update(started)
    record.save()

    try:
        _wait_all([s for s in specs], record, console)
    except StackError:
        for name, service in started.items():
            stop(service)
            Path(service.pid_file).unlink(missing_ok=True)
            del record.services[name]
        record.save()
        raise

    write_airflow_files(settings)
    return record


def _wait_all(specs: list[ServiceSpec], record: StackRecord, console: Console) -> None:
    """Probe every service's API until it answers, showing progress."""
    with WaitDisplay(console, [spec.title for spec in specs]) as display:
        for spec in specs:
            service = record.services[spec.name]
            started = time.monotonic()
            try:
                answer = wait_until_ready(
                    spec.probe,
                    name=spec.title,
                    timeout=spec.startup_timeout,
                    still_running=lambda service=service: is_alive(service),
                    on_attempt=lambda attempt, elapsed, error, title=spec.title: display.waiting(
                        title, elapsed, error
                    ),
                )
            except ServiceNotReady as err:
                display.failed(spec.title, str(err))
                raise StackError(_fail_message(spec, service, str(err))) from None
            display.ready(spec.title, time.monotonic() - started, _describe(spec.name, answer))


def _describe(name: str, answer: object) -> str:
    return f"version {answer}" if name == "pachd" else "REST API answers"


def down(settings: LocalSettings, *, timeout: float = 15.0, console: Console | None = None) -> dict[str, str]:
    """Stop every recorded service (SIGTERM the group, SIGKILL after ``timeout``); idempotent.

    Returns {service: "stopped" | "killed" | "not running"}.
    """
    console = console or Console(stderr=True)
    record = StackRecord.load(settings)
    if record is None:
        console.print(f"nothing to stop: no local stack recorded in {settings.state_dir}")
        return {}
    if not record.services:
        console.print(f"nothing to stop: the local stack in {settings.state_dir} is not running")
        return {}
    outcome = {}
    for name, service in list(record.services.items()):
        outcome[name] = stop(service, timeout=timeout)
        Path(service.pid_file).unlink(missing_ok=True)
        console.print(f"{name}: {outcome[name]} (pid {service.pid})")
        del record.services[name]
    record.save()
    return outcome


def status(settings: LocalSettings, *, probe_timeout: float = 2.0) -> dict:
    """What runs where: addresses, pids, alive and whether each API answers right now."""
    record = StackRecord.load(settings)
    effective = record.settings if record else settings
    specs = {spec.name: spec for spec in all_specs(effective, timeout=probe_timeout)}
    services = {}
    for name, spec in specs.items():
        service = record.services.get(name) if record else None
        alive = bool(service and is_alive(service))
        serving = False
        if alive:
            try:
                spec.probe()
                serving = True
            except Exception:  # a live process that does not answer is reported, not raised
                serving = False
        services[name] = {
            "title": spec.title,
            "url": spec.url,
            "port": spec.port,
            "pid": service.pid if service else None,
            "alive": alive,
            "serving": serving,
            "log_file": service.log_file if service else str(effective.log_dir / f"{name}.log"),
        }
    return {
        "state_dir": str(effective.state_dir),
        "running": all(s["serving"] for s in services.values()),
        "pachd_address": effective.pachd_address,
        "mlflow_tracking_uri": effective.mlflow_tracking_uri,
        "mlflow_ui_url": effective.mlflow_tracking_uri + "/",
        "airflow_env_file": str(effective.airflow_env_file),
        "connections_file": str(effective.connections_file),
        "airflow_home": str(effective.airflow_home),
        "services": services,
    }
