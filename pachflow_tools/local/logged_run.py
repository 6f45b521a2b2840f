"""Run a command with its whole output in a log file and the lines that show progress on the console."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from rich.console import Console

# `airflow dags test`: task starts and ends, pipeline job results, failures. Links look up optional
# XComs and Airflow logs each miss as an error: not a failure.
DAG_TEST_LINE = re.compile(
    r"\[DAG TEST\] (starting|end task|Trigger completed)|DagRun Finished|finished: job|Traceback|"
    r"(\[error|\bERROR\b)(?!.*XCom not found)"
)
GENERATOR_LINE = re.compile(r"INFO|WARN|ERROR|Error|Traceback")
MIGRATE_LINE = re.compile(r"migration done|ERROR|Error|Traceback")

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)\.\d+Z\s+")
_NOISE = re.compile(r"\[(info|debug)\s*\]\s+|\s+\[[\w.]+\]|\s+(loc|ti|correlation_id|run_start_date)=\S.*$")


def compact(line: str) -> str:
    """An Airflow log line without date, level padding and logger names: ``14:23:29 [DAG TEST] ...``."""
    line = _TIMESTAMP.sub(r"\1 ", line.rstrip())
    return _NOISE.sub("", line)


def run_logged(
    console: Console, command: list[str], *, log: Path, env: dict[str, str], show: re.Pattern[str] | None
) -> int:
    """Run ``command``; all output to ``log``, and every line (or those matching ``show``) to the
    console as it comes. Returns the exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as sink:
        sink.write(f"$ {' '.join(command)}\n")
        sink.flush()
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            if show is None or show.search(line):
                console.print("  " + compact(line)[:200], style="dim", markup=False)
        return proc.wait()
