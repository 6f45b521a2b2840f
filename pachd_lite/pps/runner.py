"""Run a pipeline's user code for one datum on the host, as pachd's worker driver would.

    run_transform(transform: pps.Transform, sandbox: Path, env: Mapping[str, str], *,
                  on_log: Callable[[str], None] | None = None, timeout: float | None = None,
                  cancel: threading.Event | None = None, tail_lines: int = 50,
                  run_as: RunAs | None = None) -> RunResult
        Runs `transform.cmd` (no shell) with `transform.stdin` lines on its stdin, in
        `transform.working_dir` (default: the sandbox), streaming stdout+stderr lines to `on_log`.
        `/pfs` path prefixes in cmd, stdin, env values and working_dir are mapped to
        `<sandbox>/pfs`. Success = exit code 0 or one in `transform.accept_return_code`.
        On timeout or cancel the whole process group is killed.
    run_err_cmd(transform, sandbox, env, **same) -> RunResult | None
        The same for `err_cmd`/`err_stdin` (None when the spec has no err_cmd).

The rest of running user code lives in its own modules: `user_env` (job_env, the process's
environment, the `.env` file, /pfs mapping), `user_process` (UserProcess, also used by datum
batching), `process_family` (killing process trees, the subreaper), `run_as` (the unprivileged
user of PACHD_LITE_USER_CODE_USER), `dotenv_shim` (datum batching's /pfs/.env on a host).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pachyderm_sdk.api import pps

from pachd_lite.pps.run_as import RunAs
from pachd_lite.pps.user_process import UserProcess

__all__ = ["RunResult", "run_err_cmd", "run_transform"]


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
        return RunResult(None, False, time.monotonic() - started, [], error=msg)
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
