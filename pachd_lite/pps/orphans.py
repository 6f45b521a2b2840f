"""Stop user code left running by a pachd-lite that was killed (kill -9, OOM, power loss).

User processes run in their own process group (so a JVM child dies with them) and therefore
outlive a killed server. On restart their jobs run again, so the leftovers only burn CPU and
may log duplicate work (an orphan MLflow run): find them by their sandbox paths and kill their
process groups before the sandboxes are removed.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


def _uses_sandbox(proc: psutil.Process, roots: tuple[str, ...]) -> bool:
    try:
        if any(root in arg for arg in proc.cmdline() for root in roots):
            return True
        return proc.cwd().startswith(roots[0])
    except (psutil.Error, OSError):
        return False


def kill_orphaned_user_code(sandbox_root: Path) -> list[int]:
    """Kill the process groups of processes that work in ``sandbox_root``; return their group ids."""
    # cwd is always absolute; command arguments carry the path as the server was given it.
    roots = (str(Path(sandbox_root).resolve()), str(sandbox_root))
    own_group = os.getpgid(0)
    groups: set[int] = set()
    for proc in psutil.process_iter():
        if proc.pid == os.getpid() or not _uses_sandbox(proc, roots):
            continue
        try:
            group = os.getpgid(proc.pid)
        except OSError:
            continue
        if group != own_group:
            groups.add(group)
    for group in sorted(groups):
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            continue
    if groups:
        log.warning("killed %d process group(s) of user code left by an earlier server", len(groups))
    return sorted(groups)
