"""`make demo`: the whole product on this machine in one command.

Starts the local stack (pachd-lite + MLflow), generates a PaySim-shaped sample, runs the
``fraud_detection`` DAG with ``airflow dags test`` for a first day and then for the first two days
(the second run only processes what is new), prints the model's lineage both ways, and leaves the
services running for the UIs until ``make down``. Any failed step stops the demo with the step's
name and its log file.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from pachflow_tools.local.airflow_env import process_environment
from pachflow_tools.local.logged_run import DAG_TEST_LINE, GENERATOR_LINE, MIGRATE_LINE, run_logged
from pachflow_tools.local.processes import tail
from pachflow_tools.local.settings import LocalSettings
from pachflow_tools.local.stack import StackError, settings_for_up, up

DAG_ID = "fraud_detection"
ENV_ROWS = "PACHFLOW_DEMO_ROWS"
ENV_DAYS = "PACHFLOW_DEMO_DAYS"
DEFAULT_ROWS = 300_000
DEFAULT_DAYS = 3
RUN_DAYS = 2  # day 1, then days 1+2: the second run shows incremental processing
console = Console(soft_wrap=True, highlight=False)


class DemoFailed(RuntimeError):
    """A demo step failed; the message names the step and where to look."""


@dataclass(frozen=True)
class DemoOptions:
    rows: int
    days: int
    seed: int
    settings: LocalSettings

    @property
    def raw_dir(self) -> Path:
        return self.settings.data_dir / "raw"

    @property
    def sources_dir(self) -> Path:
        return self.settings.data_dir / "sources"

    def log(self, name: str) -> Path:
        return self.settings.log_dir / f"demo-{name}.log"


@contextmanager
def step(number: int, title: str, log: Path | None = None) -> Iterator[None]:
    """Print a step header, time it, and turn any failure into a DemoFailed naming the step."""
    console.print(Rule(f"[bold]{number}. {title}", align="left"))
    started = time.monotonic()
    try:
        yield
    except DemoFailed:
        raise
    except (StackError, subprocess.SubprocessError, OSError, ValueError, KeyError) as err:
        where = f"\n  log: {log}" if log else ""
        detail = f"{type(err).__name__}: {err}" if isinstance(err, KeyError) else str(err)
        raise DemoFailed(f"step {number} ({title}) failed: {detail}{where}") from err
    console.print(f"[green]✓[/] {title} ({time.monotonic() - started:.1f}s)")


def preflight(options: DemoOptions) -> list[str]:
    """What the demo needs that this checkout lacks, each named precisely."""
    missing = []
    dag_file = options.settings.project / "dags" / f"{DAG_ID}.py"
    if not dag_file.exists():
        missing.append(f"{dag_file} (the {DAG_ID} DAG) does not exist")
    for module, what in (
        ("spark_jobs.generate", "the sample generator (`pachflow generate`)"),
        ("pachflow_tools.lineage_cli", "the lineage command (`pachflow lineage`)"),
        ("pachd_lite", "pachd-lite"),
    ):
        if importlib.util.find_spec(module) is None:
            missing.append(f"module {module} ({what}) is not installed")
    return missing


def generate_sample(options: DemoOptions) -> list[Path]:
    """PaySim-shaped CSVs, one per day; reused when the same parameters generated them before."""
    params = {"rows": options.rows, "days": options.days, "seed": options.seed}
    stamp = options.raw_dir / "params.json"
    existing = sorted(options.raw_dir.glob("paysim-day-*.csv"))
    if stamp.exists() and json.loads(stamp.read_text()) == params and len(existing) == options.days:
        console.print(f"reusing {len(existing)} files in {options.raw_dir} (same rows/days/seed)")
        return existing
    for old in existing:
        old.unlink()
    command = [
        sys.executable, "-m", "spark_jobs.generate", "--output", str(options.raw_dir),
        "--rows", str(options.rows), "--days", str(options.days), "--seed", str(options.seed),
    ]  # fmt: skip
    code = run_logged(
        console, command, log=options.log("generate"), env=dict(os.environ), show=GENERATOR_LINE
    )
    if code != 0:
        raise DemoFailed(
            f"step 2 (generate sample) failed: exit code {code}\n  log: {options.log('generate')}"
        )
    files = sorted(options.raw_dir.glob("paysim-day-*.csv"))
    if len(files) != options.days:
        raise DemoFailed(f"step 2 (generate sample) wrote {len(files)} files, expected {options.days}")
    stamp.write_text(json.dumps(params))
    return files


def source_for_days(options: DemoOptions, files: list[Path], days: int) -> Path:
    """A folder holding (links to) the first ``days`` daily files: the DAG's ``source`` param."""
    folder = options.sources_dir / f"days-1-{days}"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for path in files[:days]:
        (folder / path.name).symlink_to(path)
    return folder


def run_dag(options: DemoOptions, day: int, source: Path) -> dict:
    """`airflow dags test fraud_detection` with ``source``; returns the run report (run id, lineage)."""
    env = process_environment(options.settings)
    log = options.log(f"dag-day-{day}")
    conf = json.dumps({"source": str(source)})
    console.print(f"airflow dags test {DAG_ID} -c '{conf}'   (full output: {log})")
    code = run_logged(
        console, [_airflow(), "dags", "test", DAG_ID, "-c", conf], log=log, env=env, show=DAG_TEST_LINE
    )
    report = _airflow_report(env)
    if code != 0 or report.get("state") != "success":
        failed = [
            task for task, state in report.get("tasks", {}).items() if state not in ("success", "skipped")
        ]
        raise DemoFailed(
            f"step {3 + day} (DAG run, day {day}) failed: exit code {code}, run state {report.get('state')}, "
            f"tasks not successful: {failed or 'unknown'}\n  log: {log}\n"
            f"  last log lines:\n{_indent(tail(log, 15))}"
        )
    for task, state in sorted(report["tasks"].items()):
        console.print(f"  {task:<28} {state}")
    return report


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _airflow() -> str:
    beside = Path(sys.executable).with_name("airflow")
    return str(beside) if beside.exists() else "airflow"


def _airflow_report(env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "pachflow_tools.local.airflow_report", DAG_ID],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return {"state": None, "error": result.stderr.strip().splitlines()[-1:] or ["no output"]}
    return json.loads(result.stdout)


def lineage_of(report: dict) -> dict:
    """The ``lineage`` XCom of the run (DESIGN: {commit_set, commits, mlflow_run_id, ...}); when the
    run had nothing new to train on (a repeated demo), the newest lineage recorded by an earlier run."""
    values = list(report.get("lineage", {}).values())
    if values:
        return values[0]
    newest = report.get("newest_lineage")
    if newest:
        console.print(
            f"  run {report.get('run_id')} found nothing new to train on (data already in Pachyderm); "
            f"the newest model is from run {newest['run_id']}"
        )
        return newest["lineage"]
    raise DemoFailed(
        f"the DAG run {report.get('run_id')} succeeded but no run of {DAG_ID} recorded an XCom `lineage` "
        "(expected on the record_lineage task)"
    )


def show_jobs(options: DemoOptions) -> None:
    """Datums processed and skipped per pipeline job of the latest commit set (incremental work)."""
    from pachyderm_sdk import Client
    from pachyderm_sdk.api import pps

    client = Client(host=options.settings.client_host, port=options.settings.pachd_port)
    for name in ("split_data", "etl", "ml_train"):
        jobs = list(client.pps.list_job(pipeline=pps.Pipeline(name=name), history=0))
        if not jobs:
            continue
        job = jobs[0]
        console.print(
            f"  {name:<11} job {job.job.id[:12]}  {pps.JobState(job.state).name:<12} datums: {job.data_processed} processed, "
            f"{job.data_skipped} skipped, {job.data_total} total"
        )


def run_lineage(options: DemoOptions, args: list[str], name: str) -> None:
    console.print(f"$ pachflow lineage {' '.join(args)}")
    code = run_logged(
        console,
        [sys.executable, "-m", "pachflow_tools.cli", "lineage", *args],
        log=options.log(name),
        env=process_environment(options.settings),
        show=None,
    )
    if code != 0:
        raise DemoFailed(
            f"`pachflow lineage {' '.join(args)}` failed (exit {code})\n  log: {options.log(name)}"
        )


def venv_command(name: str) -> str:
    """How to run this environment's ``name`` script from the working directory in a new shell
    (no virtualenv activated): ``.venv/bin/<name>`` from the repository root, else its full path."""
    exe = Path(sys.executable).parent / name
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def follow_up_commands(run_id: str, raw_commit: str) -> list[str]:
    """The commands to try after the demo, exactly as printed: they find the running local stack
    themselves (no virtualenv, no exported settings needed)."""
    pachflow = venv_command("pachflow")
    return [
        f"{pachflow} lineage --run-id {run_id}",
        f"{pachflow} lineage --commit raw_data@{raw_commit}",
        f"{pachflow} rejects split_data@master",
        f"{pachflow} local status",
    ]


def airflow_command(*args: str) -> str:
    """An ``airflow`` command line against the local stack, for a new shell (one line)."""
    return f'eval "$({venv_command("pachflow")} local env)" && {venv_command("airflow")} {" ".join(args)}'


def run(options: DemoOptions) -> int:
    started = time.monotonic()
    settings = options.settings
    missing = preflight(options)
    if missing:
        raise DemoFailed("the demo cannot run yet; missing:\n" + "\n".join(f"  - {item}" for item in missing))

    with step(1, "start pachd-lite and MLflow (pachflow local up)", settings.log_dir):
        up(settings, console=console)

    with step(2, f"generate a PaySim-shaped sample: {options.rows:,} rows over {options.days} days",
              options.log("generate")):  # fmt: skip
        files = generate_sample(options)
        for path in files:
            console.print(f"  {path}  ({path.stat().st_size / 1e6:.1f} MB)")

    env = process_environment(settings)
    with step(3, "prepare the Airflow database", options.log("airflow-db")):
        code = run_logged(
            console, [_airflow(), "db", "migrate"], log=options.log("airflow-db"), env=env, show=MIGRATE_LINE
        )
        if code != 0:
            raise DemoFailed(
                f"step 3 (airflow db migrate) failed: exit {code}\n  log: {options.log('airflow-db')}"
            )

    reports = []
    for day in range(1, RUN_DAYS + 1):
        source = source_for_days(options, files, day)
        title = f"run {DAG_ID} for day 1" if day == 1 else f"run {DAG_ID} for days 1-{day} (incremental)"
        with step(3 + day, title, options.log(f"dag-day-{day}")):
            reports.append(run_dag(options, day, source))
            if reports[-1]["tasks"].get("push_raw_data") == "skipped":
                console.print("  nothing new to push (these files are already in raw_data): no pipeline ran")
                continue
            try:
                show_jobs(options)
            except Exception as err:  # informative only; the run itself was verified above
                console.print(f"  [yellow](could not list pipeline jobs: {err})[/]")

    with step(4 + RUN_DAYS, "lineage: MLflow run → Pachyderm commits", options.log("lineage-run")):
        lineage = lineage_of(reports[-1])
        run_id = lineage["mlflow_run_id"]
        run_lineage(options, ["--run-id", run_id], "lineage-run")
    with step(5 + RUN_DAYS, "lineage: raw data commit → MLflow run and model", options.log("lineage-commit")):
        raw_commit = lineage["commits"]["raw_data"]
        run_lineage(options, ["--commit", f"raw_data@{raw_commit}"], "lineage-commit")

    experiment = lineage.get("mlflow_experiment_id")
    run_url = (
        f"{settings.mlflow_tracking_uri}/#/experiments/{experiment}/runs/{run_id}" if experiment else None
    )
    console.print(Rule("[bold green]demo finished"))
    console.print(
        f"MLflow UI:    {settings.mlflow_tracking_uri}/" + (f"   (this run: {run_url})" if run_url else "")
    )
    console.print(
        "Airflow UI:   make airflow-ui   (then open http://127.0.0.1:8080; it prints the admin password)"
    )
    console.print(f"pachd-lite:   {settings.pachd_address}   (what runs where: pachflow local status)")
    console.print("Try next (from this folder, in any shell):")
    for command in [*follow_up_commands(run_id, raw_commit), airflow_command("dags", "test", DAG_ID)]:
        console.print(f"  {command}", markup=False)
    console.print("Services keep running until you stop them with: make down")
    console.print(f"Total time:   {time.monotonic() - started:.0f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pachflow_tools.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rows", type=int, default=int(os.environ.get(ENV_ROWS, DEFAULT_ROWS)),
                        help=f"sample rows in total (env {ENV_ROWS}; default {DEFAULT_ROWS:,})")  # fmt: skip
    parser.add_argument("--days", type=int, default=int(os.environ.get(ENV_DAYS, DEFAULT_DAYS)),
                        help=f"daily files to generate, at least {RUN_DAYS} (env {ENV_DAYS}; default {DEFAULT_DAYS})")  # fmt: skip
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--state-dir", help="local stack folder (env PACHFLOW_LOCAL_DIR; default .local/)")
    parser.add_argument(
        "--pachd-port", type=int, help="pachd-lite port (env PACHFLOW_PACHD_PORT; default 30650)"
    )
    parser.add_argument(
        "--mlflow-port", type=int, help="MLflow port (env PACHFLOW_MLFLOW_PORT; default 5000)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.days < RUN_DAYS or args.rows < args.days:
        console.print(f"[red]error:[/] need --days >= {RUN_DAYS} and --rows >= --days")
        return 2
    try:
        settings = settings_for_up(args.state_dir, args.pachd_port, args.mlflow_port)
        return run(DemoOptions(rows=args.rows, days=args.days, seed=args.seed, settings=settings))
    except (DemoFailed, ValueError) as err:
        console.print("✗ demo failed", style="bold red")
        console.print(str(err), markup=False)
        console.print("Services already started keep running for inspection (`pachflow local status`); "
                      "stop them with: make down")  # fmt: skip
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]; services keep running; stop them with: make down")
        return 130


if __name__ == "__main__":
    sys.exit(main())
