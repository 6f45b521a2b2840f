"""A started user process (one datum's, or a datum batching worker's): its own process group,
its output pumped line by line to a callback, and everything it started ended with it.

When it ends, so does its process group, every descendant seen while it ran, and (after
``CHILDREN.become_subreaper()``) any orphan it left, even one that called setsid(): nothing it
started outlives the datum and writes to a sandbox or an output.
"""

from __future__ import annotations

import array
import collections
import fcntl
import logging
import os
import signal
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import psutil

from pachd_lite.pps.dotenv_shim import install_python_shim
from pachd_lite.pps.process_family import CHILDREN, kill_tree
from pachd_lite.pps.run_as import RunAs
from pachd_lite.pps.user_env import map_pfs_paths, user_process_env

log = logging.getLogger(__name__)

_LINE_MAX = 1 << 16
_SAMPLE_EVERY = 0.5  # seconds between looks at a running user process's descendants


class UserProcess:
    """A running user command in its own process group, its output pumped line by line."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        sandbox: Path | str,
        env: Mapping[str, str],
        stdin_lines: Iterable[str] = (),
        cwd: str | None = None,
        on_log: Callable[[str], None] | None = None,
        tail_lines: int = 50,
        python_dotenv_shim: bool = False,
        run_as: RunAs | None = None,
    ) -> None:
        if not cmd:
            raise ValueError("transform.cmd is empty; pachd-lite cannot fall back to an image entrypoint")
        self.sandbox = Path(sandbox)
        self._on_log = on_log
        self.log_tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        full_env = user_process_env(env, self.sandbox)
        user: dict = {}
        if run_as is not None:
            user = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}
            full_env.update({"USER": run_as.name, "LOGNAME": run_as.name})
            if "HOME" not in env:
                full_env["HOME"] = str(self.sandbox)  # root's HOME is not theirs
        if python_dotenv_shim:
            install_python_shim(self.sandbox, full_env)
        argv = [map_pfs_paths(a, self.sandbox) for a in cmd]
        workdir = map_pfs_paths(cwd, self.sandbox) if cwd else str(self.sandbox)
        stdin_data = [map_pfs_paths(line, self.sandbox) for line in stdin_lines]
        self.started = time.monotonic()
        with CHILDREN.lock:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin_data else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=full_env,
                start_new_session=True,  # own process group: kill() takes children (e.g. a JVM) too
                **user,
            )
            CHILDREN.add_leader(self._proc.pid)
        self.pid = self._proc.pid
        self._busy = False
        self._descendants: dict[int, psutil.Process] = {}
        self._sampled = 0.0
        self._reader = threading.Thread(target=self._pump, name=f"user-log-{self.pid}", daemon=True)
        self._reader.start()
        if stdin_data:
            threading.Thread(target=self._feed, args=("\n".join(stdin_data) + "\n",), daemon=True).start()

    def _feed(self, data: str) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(data.encode())
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the command exited without reading all of its stdin

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        partial = b""
        while True:
            self._busy = False
            chunk = os.read(fd, _LINE_MAX)  # unbuffered: what drain() cannot see is in the pipe
            self._busy = True
            if not chunk:
                break
            *lines, partial = (partial + chunk).split(b"\n")
            if len(partial) >= _LINE_MAX:  # an endless line is logged in pieces
                lines.append(partial)
                partial = b""
            for raw in lines:
                self.emit(raw.decode(errors="replace").rstrip("\r"))
        if partial:
            self.emit(partial.decode(errors="replace").rstrip("\r"))
        self._busy = False
        self._proc.stdout.close()

    def drain(self, timeout: float = 0.05) -> None:
        """Wait briefly until every line written so far was emitted (datum batching calls this
        before switching datums, so a datum's last lines are attributed to it)."""
        assert self._proc.stdout is not None
        pending = array.array("i", [0])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                fcntl.ioctl(self._proc.stdout.fileno(), termios.FIONREAD, pending)
            except (OSError, ValueError):
                return  # the output is closed: everything was emitted
            if not pending[0] and not self._busy:
                return
            time.sleep(0.002)

    def emit(self, line: str) -> None:
        """Record a line the process printed."""
        self.log_tail.append(line)
        if self._on_log is not None:
            try:
                self._on_log(line)
            except Exception:  # a broken log sink must not break the datum
                log.exception("on_log callback failed")

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def poll(self) -> int | None:
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """Exit code, or None if still running after `timeout` seconds."""
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._sample_descendants()
            return None
        self._finish()
        return code

    def _sample_descendants(self) -> None:
        now = time.monotonic()
        if now - self._sampled < _SAMPLE_EVERY:
            return
        self._sampled = now
        try:
            for child in psutil.Process(self.pid).children(recursive=True):
                self._descendants.setdefault(child.pid, child)
        except psutil.Error:
            pass

    def kill(self) -> None:
        """Kill the whole process group and wait for it."""
        self._killpg()
        self._proc.wait()
        self._finish()

    def _killpg(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _finish(self) -> None:
        # Background children die with the datum, also those that left the process group.
        self._killpg()
        for child in self._descendants.values():
            kill_tree(child)
        CHILDREN.leader_ended(self.pid)
        CHILDREN.sweep_orphans()
        self._reader.join(timeout=5)
