"""Run a pipeline's user code for one datum on the host, as pachd's worker driver would.

Public API (stable; the PPS core calls it):

    run_transform(transform: pps.Transform, sandbox: Path, env: Mapping[str, str], *,
                  on_log: Callable[[str], None] | None = None, timeout: float | None = None,
                  cancel: threading.Event | None = None, tail_lines: int = 50) -> RunResult
        Runs `transform.cmd` (no shell) with `transform.stdin` lines on its stdin, in
        `transform.working_dir` (default: the sandbox), streaming stdout+stderr lines to `on_log`.
        `/pfs` path prefixes in cmd, stdin, env values and working_dir are mapped to
        `<sandbox>/pfs`. Success = exit code 0 or one in `transform.accept_return_code`.
        On timeout or cancel the whole process group is killed.
    run_err_cmd(transform, sandbox, env, **same) -> RunResult | None
        The same for `err_cmd`/`err_stdin` (None when the spec has no err_cmd).
    job_env(*, pipeline_name, project_name, job_id, output_commit_id, spec_commit_id,
            transform_env=None, worker_port=None, pachd_address=None, auth_token="") -> dict[str, str]
        The job-level variables pachd gives workers (PPS_*, PACH_JOB_ID, PACH_OUTPUT_COMMIT_ID...).
        Per-datum variables come from `datums.datum_env(datum)`; merge as
        `{**job_env(...), **datum_env(datum)}` and pass the result as `env`.
    UserProcess(cmd, *, sandbox, env, stdin_lines=(), cwd=None, on_log=None, tail_lines=50,
                python_dotenv_shim=False)
        A started user process (used directly by datum batching): .pid, .poll(), .wait(t),
        .kill(), .returncode, .log_tail. With python_dotenv_shim=True, pachyderm_sdk's hard-coded
        /pfs/.env (datum batching) is redirected to <sandbox>/pfs/.env (see _SITECUSTOMIZE).
        When it ends, everything it started ends too: its process group, every descendant seen
        while it ran, and (after become_subreaper()) any orphan it left, even one that called
        setsid() — nothing it started outlives the datum and writes to a sandbox or an output.
    RunAs.from_env() -> RunAs | None   the user named by PACHD_LITE_USER_CODE_USER (needs root);
        run_transform/run_err_cmd/UserProcess take `run_as=` and then start user code as that
        user (uid, gid, no supplementary groups, HOME = the sandbox), as a worker pod's container
        runs as its image's user, not as pachd.
    become_subreaper() -> bool
        Linux PR_SET_CHILD_SUBREAPER: orphaned descendants of user code are re-parented to this
        process instead of init, so they can be found and stopped. The server calls it once;
        only then are children that are not a running UserProcess treated as leftovers.
    write_dotenv(sandbox, env) -> Path   writes <sandbox>/pfs/.env (values /pfs-mapped).
    map_pfs_paths(text, sandbox) -> str

The user process inherits pachd-lite's own environment (like a worker container inherits its
image's), then `env` on top; PATH starts with the directory of `sys.executable`, so
`python3 -m spark_jobs.etl` finds the packages installed next to pachd-lite. PYTHONUNBUFFERED=1
is set unless given, so Python user code's prints reach the logs while it runs.
"""

from __future__ import annotations

import array
import collections
import ctypes
import fcntl
import logging
import os
import pwd
import re
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from pachyderm_sdk.api import pps

__all__ = [
    "TOKEN_ENV_VARS",
    "RunAs",
    "RunResult",
    "UserProcess",
    "become_subreaper",
    "job_env",
    "map_pfs_paths",
    "run_err_cmd",
    "run_transform",
    "user_process_env",
    "write_dotenv",
]

log = logging.getLogger(__name__)

# "/pfs" as a path prefix: not preceded by a path character, followed by "/" or a non-name char.
_PFS_PREFIX = re.compile(r"(?<![\w./~-])/pfs(?=/|$|[^\w.-])")
DOTENV_ENV_VAR = "PACHD_LITE_DOTENV"
TOKEN_ENV_VARS = ("PACH_PYTHON_AUTH_TOKEN", "PACH_TOKEN")  # where user code gets the auth token


def map_pfs_paths(text: str, sandbox: Path | str) -> str:
    """Replace every `/pfs` path prefix in `text` with `<sandbox>/pfs`."""
    target = str(Path(sandbox) / "pfs")
    return _PFS_PREFIX.sub(lambda _m: target, text)


def job_env(
    *,
    pipeline_name: str,
    project_name: str,
    job_id: str,
    output_commit_id: str,
    spec_commit_id: str,
    transform_env: Mapping[str, str] | None = None,
    worker_port: int | None = None,
    pachd_address: tuple[str, int] | None = None,
    auth_token: str = "",
) -> dict[str, str]:
    """Job-level worker variables; the spec's `transform.env` cannot override pachd's own.

    With ``auth_token``, user code gets it as ``PACH_PYTHON_AUTH_TOKEN`` (what pachyderm_sdk's
    ``Client()``/``Client.new_in_cluster()`` read) and ``PACH_TOKEN`` (what pachd gives workers)."""
    env = dict(transform_env or {})
    env.update(
        {
            "PPS_PIPELINE_NAME": pipeline_name,
            "PPS_PROJECT_NAME": project_name,
            "PPS_SPEC_COMMIT": spec_commit_id,
            "PPS_POD_NAME": f"pachd-lite-{project_name}-{pipeline_name}".lower(),
            "PPS_WORKER_IP": "127.0.0.1",
            "PACH_JOB_ID": job_id,
            "PACH_OUTPUT_COMMIT_ID": output_commit_id,
        }
    )
    if worker_port is not None:
        env["PPS_WORKER_GRPC_PORT"] = str(worker_port)
    if pachd_address is not None:
        # What Client.new_in_cluster() reads inside a worker.
        env["PACHD_PEER_SERVICE_HOST"], env["PACHD_PEER_SERVICE_PORT"] = (
            pachd_address[0],
            str(pachd_address[1]),
        )
    if auth_token:
        for key in TOKEN_ENV_VARS:
            env[key] = auth_token
    return env


def user_process_env(env: Mapping[str, str], sandbox: Path | str) -> dict[str, str]:
    """The full environment of a user process: inherited, then `env` (/pfs-mapped), PATH first
    entry = this interpreter's bin directory."""
    full = dict(os.environ)
    full.update({k: map_pfs_paths(v, sandbox) for k, v in env.items()})
    bin_dir = os.path.dirname(sys.executable)
    path = full.get("PATH", os.defpath)
    full["PATH"] = bin_dir + os.pathsep + path if path else bin_dir
    full.setdefault("PYTHONUNBUFFERED", "1")
    return full


def write_dotenv(sandbox: Path | str, env: Mapping[str, str]) -> Path:
    """Write `<sandbox>/pfs/.env` (python-dotenv syntax, double-quoted values, /pfs-mapped)."""
    path = Path(sandbox) / "pfs" / ".env"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for key, value in env.items():
        v = map_pfs_paths(value, sandbox)
        v = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'{key}="{v}"\n')
    tmp = path.with_name(".env.tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)
    return path


USER_ENV_VAR = "PACHD_LITE_USER_CODE_USER"


@dataclass(frozen=True)
class RunAs:
    """An unprivileged user that user code runs as (pachd-lite itself runs as root)."""

    name: str
    uid: int
    gid: int

    @classmethod
    def from_env(cls) -> RunAs | None:
        name = os.environ.get(USER_ENV_VAR, "").strip()
        if not name:
            return None
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ValueError(f"{USER_ENV_VAR}={name}: no such user on this machine") from None
        if entry.pw_uid == 0:
            raise ValueError(f"{USER_ENV_VAR}={name}: user code must run as an unprivileged user, not root")
        if os.geteuid() != 0:
            raise ValueError(
                f"{USER_ENV_VAR}={name}: pachd-lite must run as root to start user code as {name}"
            )
        return cls(name, entry.pw_uid, entry.pw_gid)

    def own(self, *paths: Path) -> None:
        """Give ``paths`` to this user (its sandbox folder and /pfs/out)."""
        for path in paths:
            os.chown(path, self.uid, self.gid)


_LINE_MAX = 1 << 16
_PR_SET_CHILD_SUBREAPER = 36
_SAMPLE_EVERY = 0.5  # seconds between looks at a running user process's descendants
_family_lock = threading.Lock()  # a new user process is registered before any sweep can see it
_leaders: set[int] = set()  # pids of running UserProcesses (this process's legitimate children)
_subreaper = False


def become_subreaper() -> bool:
    """Adopt orphaned descendants (see module docstring); False where prctl is unavailable."""
    global _subreaper
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    _subreaper = True
    return True


def _kill_tree(proc: psutil.Process) -> None:
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


def _sweep_orphans() -> None:
    """Kill and reap children of this (subreaper) process that are no running UserProcess."""
    if not _subreaper:
        return
    with _family_lock:
        strays = []
        for pid in _child_pids() - _leaders:
            try:
                strays.append(psutil.Process(pid))
            except psutil.Error:
                continue
        for child in strays:
            _kill_tree(child)
    for child in strays:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                if os.waitpid(child.pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.01)


# A known difference from pachd, documented for users: pachyderm_sdk's datum batching loads the
# hard-coded /pfs/.env, which does not exist on a host. This sitecustomize (first on the user
# process's PYTHONPATH) repoints that module's DOTENV_PATH_WORKER to $PACHD_LITE_DOTENV when
# pachyderm_sdk.api.worker.extension is imported, then runs any other sitecustomize as usual.
_SITECUSTOMIZE = '''\
"""pachd-lite: point pachyderm_sdk's datum-batching .env at the sandbox (not /pfs/.env)."""
import importlib.abc, importlib.machinery, importlib.util, os, sys
from pathlib import Path

_TARGET = "pachyderm_sdk.api.worker.extension"
_HERE = os.path.dirname(os.path.abspath(__file__))


class _RepointDotenv(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET or not os.environ.get("PACHD_LITE_DOTENV"):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def patched(module):
            exec_module(module)
            module.DOTENV_PATH_WORKER = Path(os.environ["PACHD_LITE_DOTENV"])

        spec.loader.exec_module = patched
        return spec


sys.meta_path.insert(0, _RepointDotenv())

_other = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
)
if _other is not None and _other.loader is not None:
    _module = importlib.util.module_from_spec(_other)
    _other.loader.exec_module(_module)
'''


def _install_python_shim(sandbox: Path, env: dict[str, str]) -> None:
    shim_dir = sandbox / ".pachd-lite-python"
    shim_dir.mkdir(parents=True, exist_ok=True)
    (shim_dir / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(shim_dir) + (os.pathsep + existing if existing else "")
    env[DOTENV_ENV_VAR] = str(sandbox / "pfs" / ".env")


@dataclass
class RunResult:
    """Outcome of one user-code run."""

    exit_code: int | None  # None: never started or killed before reporting; -N: killed by signal N
    success: bool
    duration_s: float
    log_tail: list[str] = field(default_factory=list)
    timed_out: bool = False
    cancelled: bool = False
    error: str = ""  # why it failed, in pachd's words where pachd has them

    def failure_reason(self) -> str:
        """One-line reason plus the last log lines, for a job's `reason`."""
        if self.success:
            return ""
        tail = "\n".join(self.log_tail)
        return f"{self.error}\n{tail}" if tail else self.error


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
            _install_python_shim(self.sandbox, full_env)
        argv = [map_pfs_paths(a, self.sandbox) for a in cmd]
        workdir = map_pfs_paths(cwd, self.sandbox) if cwd else str(self.sandbox)
        stdin_data = [map_pfs_paths(line, self.sandbox) for line in stdin_lines]
        self.started = time.monotonic()
        with _family_lock:
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
            _leaders.add(self._proc.pid)
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
        """Record a log line (also used for pachd-lite's own messages about this process)."""
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
            _kill_tree(child)
        with _family_lock:
            _leaders.discard(self.pid)
        _sweep_orphans()
        self._reader.join(timeout=5)


def _run(
    cmd: Sequence[str],
    stdin_lines: Sequence[str],
    transform: pps.Transform,
    sandbox: Path | str,
    env: Mapping[str, str],
    *,
    on_log: Callable[[str], None] | None,
    timeout: float | None,
    cancel: threading.Event | None,
    tail_lines: int,
    run_as: RunAs | None,
) -> RunResult:
    started = time.monotonic()
    try:
        proc = UserProcess(
            cmd,
            sandbox=sandbox,
            env=env,
            stdin_lines=stdin_lines,
            cwd=transform.working_dir or None,
            on_log=on_log,
            tail_lines=tail_lines,
            run_as=run_as,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError, ValueError) as e:
        msg = f"could not start user code {list(cmd)!r}: {e}"
        if on_log is not None:
            on_log(msg)
        return RunResult(None, False, time.monotonic() - started, [msg], error=msg)
    deadline = None if timeout is None else started + timeout
    timed_out = cancelled = False
    while True:
        step = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
        code = proc.wait(step)
        if code is not None:
            break
        if cancel is not None and cancel.is_set():
            cancelled = True
        elif deadline is not None and time.monotonic() >= deadline:
            timed_out = True
        if cancelled or timed_out:
            proc.kill()
            code = proc.returncode
            break
    duration = time.monotonic() - started
    if timed_out:
        error = f"datum timed out after {timeout:g}s"
    elif cancelled:
        error = "datum cancelled"
    else:
        error = ""
    success = not (timed_out or cancelled) and (code == 0 or code in set(transform.accept_return_code))
    if not success and not error:
        error = f"user code exited with code {code}" if code >= 0 else f"user code killed by signal {-code}"
    if error and (timed_out or cancelled):
        proc.emit(error)
    return RunResult(code, success, duration, list(proc.log_tail), timed_out, cancelled, error)


def run_transform(
    transform: pps.Transform,
    sandbox: Path | str,
    env: Mapping[str, str],
    *,
    on_log: Callable[[str], None] | None = None,
    timeout: float | None = None,
    cancel: threading.Event | None = None,
    tail_lines: int = 50,
    run_as: RunAs | None = None,
) -> RunResult:
    """Run `transform.cmd` for one datum (see module docstring)."""
    return _run(
        list(transform.cmd),
        list(transform.stdin),
        transform,
        sandbox,
        env,
        on_log=on_log,
        timeout=timeout,
        cancel=cancel,
        tail_lines=tail_lines,
        run_as=run_as,
    )


def run_err_cmd(
    transform: pps.Transform,
    sandbox: Path | str,
    env: Mapping[str, str],
    *,
    on_log: Callable[[str], None] | None = None,
    timeout: float | None = None,
    cancel: threading.Event | None = None,
    tail_lines: int = 50,
    run_as: RunAs | None = None,
) -> RunResult | None:
    """Run `transform.err_cmd` with `err_stdin` after a datum failed all its tries; success
    means the datum is RECOVERED. None if the spec has no err_cmd."""
    if not transform.err_cmd:
        return None
    return _run(
        list(transform.err_cmd),
        list(transform.err_stdin),
        transform,
        sandbox,
        env,
        on_log=on_log,
        timeout=timeout,
        cancel=cancel,
        tail_lines=tail_lines,
        run_as=run_as,
    )
