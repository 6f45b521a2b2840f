"""Nothing user code starts outlives it: killing a process tree, and adopting orphans.

``CHILDREN.become_subreaper()`` (Linux ``PR_SET_CHILD_SUBREAPER``) makes orphaned descendants
of user code re-parent to this process instead of init, so they can be found and stopped, even
one that called ``setsid()`` and double-forked. After that, every child of this process that
is not a running user process (a "leader", see pachd_lite.pps.user_process) is a leftover:
``CHILDREN.sweep_orphans()`` kills and reaps it.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

import psutil

_PR_SET_CHILD_SUBREAPER = 36


def kill_tree(proc: psutil.Process) -> None:
    """Kill ``proc`` and every descendant it has now."""
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        members = [proc]
    for member in members:
        try:
            member.kill()  # psutil refuses if the pid now belongs to another process
        except psutil.Error:
            pass


def _child_pids() -> set[int]:
    """This process's children, from /proc/self/task/*/children (psutil scans every process)."""
    pids: set[int] = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as fh:
                pids.update(int(p) for p in fh.read().split())
    except OSError:  # a thread ended meanwhile, or a kernel without the file
        return {c.pid for c in psutil.Process().children()}
    return pids


class ChildProcesses:
    """This OS process's children: the running user processes (leaders) and, once it is a
    subreaper, the orphans adopted from them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # a new user process is registered before any sweep can see it
        self._leaders: set[int] = set()  # pids of running user processes (legitimate children)
        self._subreaper = False

    def become_subreaper(self) -> bool:
        """Adopt orphaned descendants (see module docstring); False where prctl is unavailable."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
                return False
        except (OSError, AttributeError):
            return False
        self._subreaper = True
        return True

    def add_leader(self, pid: int) -> None:
        """Register a started user process; call with ``lock`` held, right after it starts."""
        self._leaders.add(pid)

    def leader_ended(self, pid: int) -> None:
        with self.lock:
            self._leaders.discard(pid)

    def sweep_orphans(self) -> None:
        """Kill and reap children of this (subreaper) process that are no running user process."""
        if not self._subreaper:
            return
        with self.lock:
            strays = []
            for pid in _child_pids() - self._leaders:
                try:
                    strays.append(psutil.Process(pid))
                except psutil.Error:
                    continue
            for child in strays:
                kill_tree(child)
        for child in strays:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    if os.waitpid(child.pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    break
                time.sleep(0.01)


# Process-global on purpose, not an object a scheduler owns: the subreaper flag is set on the OS
# process, and a sweep acts on all of the OS process's children. A second set (e.g. a second
# scheduler in one process) would not know the first one's running user processes, and its
# sweep would kill them as leftovers.
CHILDREN = ChildProcesses()
