"""Detached background services: start in their own process group, identify, stop the whole group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class ServiceRecord:
    """What `up` remembers about one started service, so that `status` and `down` find it again."""

    name: str
    pid: int
    create_time: float
    command: list[str]
    log_file: str
    pid_file: str

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ServiceRecord:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


def start_detached(
    name: str, command: list[str], *, log_file: Path, pid_file: Path, env: dict[str, str], cwd: Path
) -> ServiceRecord:
    """Start ``command`` in a new session (own process group), output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log, open(os.devnull, "rb") as devnull:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(command)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            command,
            stdin=devnull,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return ServiceRecord(
        name=name,
        pid=proc.pid,
        create_time=psutil.Process(proc.pid).create_time(),
        command=command,
        log_file=str(log_file),
        pid_file=str(pid_file),
    )


def is_alive(record: ServiceRecord) -> bool:
    """True while the recorded process runs; a reused pid (other start time) does not count."""
    try:
        proc = psutil.Process(record.pid)
        # A pid reused by another program has another start time.
        if abs(proc.create_time() - record.create_time) > 1.0:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group_members(record: ServiceRecord) -> list[psutil.Process]:
    """Every live process of the service's process group (the leader may already be gone)."""
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == record.pid:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return members


def stop(record: ServiceRecord, *, timeout: float = 15.0) -> str:
    """SIGTERM the service's process group, SIGKILL what remains after ``timeout``; idempotent.

    Returns what happened: "not running", "stopped" or "killed". MLflow's server forks worker and
    job-runner processes; stopping the group leaves none of them orphaned.
    """
    _reap(record.pid)
    leader_alive = is_alive(record)
    if not leader_alive and psutil.pid_exists(record.pid):
        # The pid now belongs to another program. Linux does not hand out a pid still used as a
        # process-group id, so no member of our old group can be left: touch nothing.
        return "not running"
    members = _group_members(record) if leader_alive or _pgid_exists(record.pid) else []
    if not leader_alive and not members:
        _reap(record.pid)
        return "not running"
    _signal_group(record.pid, signal.SIGTERM)
    _, still_alive = psutil.wait_procs(members, timeout=timeout)
    _reap(record.pid)
    if not still_alive and not _group_members(record):
        return "stopped"
    _signal_group(record.pid, signal.SIGKILL)
    psutil.wait_procs(_group_members(record), timeout=5.0)
    _reap(record.pid)
    return "killed"


def _pgid_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect the exit status if the service is our own child (same Python process started it)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def tail(path: str | Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.rstrip().splitlines()[-lines:])
