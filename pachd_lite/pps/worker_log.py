"""The worker's own log lines, as pachd 2.12's worker writes them (non-master, ``user=false``).

pachd's worker logs, with the job id (and, per datum, the datum id and input files):
- around each datum set task: ``started process datum set task``, then ``finished process datum
  set task`` or ``errored process datum set task: <err>`` (logger.LogStep);
- around each try of a datum's user code: ``beginning to run user code``, the user code's lines
  (``user=true``), then ``finished running user code after <duration>`` or ``errored running user
  code after <duration>: <err>`` — ``... because context canceled`` when it was stopped (job
  stopped, RestartDatum), ``... because context deadline exceeded`` at the datum timeout
  (driver.RunUserCode); the same with ``user error handling code`` for ``err_cmd``.
Durations are printed as Go prints a time.Duration (``1.503s``, ``250ms``, ``1m2s``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pachyderm_sdk.api import pps

from pachd_lite.pps.datum_match import files_of
from pachd_lite.pps.datums import Datum
from pachd_lite.pps.logs import LogStore
from pachd_lite.pps.runner import RunResult

T = TypeVar("T")
TASK = "process datum set task"


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's time.Duration.String() prints it."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_fraction(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{hours}h{minutes}m" if hours else (f"{minutes}m" if minutes else "")
    return f"{sign}{text}{_fraction(rest, 10**9)}s"


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    return f"{whole}." + f"{frac:0{len(str(unit)) - 1}d}".rstrip("0")


def _exit_error(result: RunResult) -> str:
    """The user code's failure as Go's exec.ExitError prints it."""
    code = result.exit_code
    if code is None:  # never started: the runner's reason
        return result.error
    if code >= 0:
        return f"exit status {code}"
    try:
        name = signal.strsignal(-code) or f"signal {-code}"
    except ValueError:
        name = f"signal {-code}"
    return f"signal: {name[:1].lower()}{name[1:]}"


def ended_message(result: RunResult, what: str = "user code") -> str:
    """The line pachd's driver logs when the user code (or ``err_cmd``) ends."""
    took = go_duration(result.duration_s)
    if result.success:
        return f"finished running {what} after {took}"
    message = f"errored running {what} after {took}: {_exit_error(result)}"
    if result.cancelled:
        return f"{message} because context canceled"
    if result.timed_out:
        return f"{message} because context deadline exceeded"
    return message


@dataclass(frozen=True)
class JobLog:
    """The worker's logger for one job (logger.WithJob)."""

    store: LogStore
    project: str
    pipeline: str
    job_id: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.project, self.pipeline, self.job_id)

    def line(self, message: str, datum_id: str = "") -> None:
        self.store.append(self.project, self.pipeline, self.job_id, datum_id, message, user=False)

    def user_line(self, message: str, datum_id: str = "") -> None:
        """A line the user code printed."""
        self.store.append(self.project, self.pipeline, self.job_id, datum_id, message)

    def master(self, message: str) -> None:
        """A line of the job's master (GetLogs with ``master``)."""
        self.store.append(self.project, self.pipeline, self.job_id, "", message, master=True)

    def describe(self, datum: Datum) -> None:
        """Record ``datum``'s input files: every line with its id is read with them (``data``)."""
        self.store.describe_datum(self.project, self.pipeline, self.job_id, datum.id, files_of(datum))

    def datum(self, datum: Datum) -> DatumLog:
        """The logger for one datum (logger.WithData): its lines carry its id and input files."""
        self.describe(datum)
        return DatumLog(self, datum.id)

    def datum_set_task(self, work: Callable[..., T]) -> Callable[..., T]:
        """``work`` (one worker's share of the datums) logged as pachd logs a datum set task."""

        def logged(*args, **kwargs) -> T:
            self.line(f"started {TASK}")
            try:
                result = work(*args, **kwargs)
            except Exception as exc:
                self.line(f"errored {TASK}: {exc}")
                raise
            self.line(f"finished {TASK}")
            return result

        return logged


@dataclass(frozen=True)
class DatumLog:
    job: JobLog
    datum_id: str

    def line(self, message: str) -> None:
        self.job.line(message, self.datum_id)

    def run_user_code(self, run: Callable[..., RunResult], *args, **kwargs) -> RunResult:
        """``run(*args, **kwargs)`` (one try of the transform) between pachd's driver lines."""
        self.line("beginning to run user code")
        result = run(*args, **kwargs)
        self.line(ended_message(result))
        return result

    def run_error_handling_code(
        self, run: Callable[..., RunResult | None], transform: pps.Transform, *args, **kwargs
    ) -> RunResult | None:
        """``run(transform, *args, **kwargs)`` (the ``err_cmd``) between pachd's driver lines;
        no line when the transform has no ``err_cmd``."""
        if not transform.err_cmd:
            return run(transform, *args, **kwargs)
        self.line("beginning to run user error handling code")
        result = run(transform, *args, **kwargs)
        if result is not None:
            self.line(ended_message(result, "user error handling code"))
        return result
