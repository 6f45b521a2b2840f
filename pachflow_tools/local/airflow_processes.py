"""Airflow's components as one group of child processes that a single signal stops, descendants included."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

STOP_GRACE_SECONDS = 5.0  # SIGTERM, then SIGKILL: the whole stop stays under 10 s


class ComponentGroup:
    """Child processes in one process group of their own (a terminal's Ctrl-C reaches only the parent,
    which stops them in order), each writing to ``<log_dir>/airflow-<name>.log``."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.pgid: int | None = None
        self.processes: dict[str, subprocess.Popen] = {}

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"airflow-{name}.log"

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        group = {"process_group": self.pgid or 0}  # the first starts the group, the others join it
        with open(self.log_file(name), "ab") as log, open(os.devnull, "rb") as devnull:
            process = subprocess.Popen(
                command, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, env=env, **group
            )
        self.pgid = self.pgid or process.pid
        self.processes[name] = process
        return process

    def exited(self) -> tuple[str, int] | None:
        """(name, exit code) of a component that ended by itself, or None while all run."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name, process.returncode
        return None

    def _members(self) -> list[psutil.Process]:
        """Every live descendant of this process plus every member of the group (reparented ones too)."""
        found = {proc.pid: proc for proc in psutil.Process().children(recursive=True)}
        if self.pgid is not None:
            for proc in psutil.process_iter():
                try:
                    if os.getpgid(proc.pid) == self.pgid:
                        found.setdefault(proc.pid, proc)
                except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
                    continue
        return list(found.values())

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> list[int]:
        """SIGTERM every member, SIGKILL what is left after ``grace`` seconds; return the killed pids."""
        members = self._members()
        for proc in members:
            _send(proc, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=grace)
        alive += [proc for proc in self._members() if proc.pid not in {p.pid for p in alive}]
        for proc in alive:
            _send(proc, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=2.0)
        for process in self.processes.values():
            try:
                process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        return [proc.pid for proc in alive]


def _send(proc: psutil.Process, sig: signal.Signals) -> None:
    try:
        proc.send_signal(sig)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
