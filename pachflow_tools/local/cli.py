"""`pachflow local up | down | status [--json] | env | airflow-ui`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pachflow_tools.local.airflow_env import airflow_environment
from pachflow_tools.local.settings import (
    ENV_HOST,
    ENV_MLFLOW_PORT,
    ENV_PACHD_PORT,
    ENV_STATE_DIR,
    LocalSettings,
)
from pachflow_tools.local.stack import StackError, StackRecord, down, settings_for_up, status, up

EXIT_NOT_RUNNING = 3


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        help=f"folder for data, logs and pid files (env {ENV_STATE_DIR}; default .local/ in the repository)",
    )
    parser = argparse.ArgumentParser(
        prog="pachflow local",
        description="Run pachd-lite and an MLflow tracking server on this machine for Airflow to use.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up_cmd = sub.add_parser("up", parents=[common], help="start pachd-lite and MLflow, wait until both serve")
    up_cmd.add_argument(
        "--pachd-port", type=int, help=f"pachd-lite port (env {ENV_PACHD_PORT}; default 30650)"
    )
    up_cmd.add_argument("--mlflow-port", type=int, help=f"MLflow port (env {ENV_MLFLOW_PORT}; default 5000)")
    up_cmd.add_argument("--host", help=f"address to bind (env {ENV_HOST}; default 127.0.0.1)")
    up_cmd.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each service")
    down_cmd = sub.add_parser("down", parents=[common], help="stop the services (idempotent)")
    down_cmd.add_argument("--timeout", type=float, default=15.0, help="seconds before SIGKILL")
    status_cmd = sub.add_parser(
        "status", parents=[common], help=f"show what runs where (exit {EXIT_NOT_RUNNING} if not all serve)"
    )
    status_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("env", parents=[common], help="print `export` lines for the stack's Airflow settings")
    ui_cmd = sub.add_parser(
        "airflow-ui",
        parents=[common],
        help="run Airflow (api-server, scheduler, dag-processor, triggerer) against the local stack",
    )
    ui_cmd.add_argument(
        "--port",
        type=int,
        help="Airflow UI port (env AIRFLOW_PORT, e.g. `make airflow-ui AIRFLOW_PORT=8090`; default 8080)",
    )
    return parser


def _settings(args: argparse.Namespace) -> LocalSettings:
    if args.command == "up":
        return settings_for_up(args.state_dir, args.pachd_port, args.mlflow_port, args.host)
    settings = LocalSettings.resolve(state_dir=args.state_dir)
    # Other commands act on what `up` recorded, whatever ports are configured now.
    record = StackRecord.load(settings)
    return record.settings if record is not None else settings


def print_status(report: dict, console: Console) -> None:
    table = Table(title=f"pachflow local stack ({report['state_dir']})")
    for column in ("service", "state", "pid", "address"):
        table.add_column(column, no_wrap=True)
    for service in report["services"].values():
        state = (
            "[green]serving[/]"
            if service["serving"]
            else ("[yellow]running, not answering[/]" if service["alive"] else "[red]stopped[/]")
        )
        table.add_row(service["title"], state, str(service["pid"] or "-"), service["url"])
    console.print(table)
    logs = sorted({str(Path(service["log_file"]).parent) for service in report["services"].values()})
    console.print(f"logs:              {', '.join(logs)}")
    console.print(f"MLflow UI:         {report['mlflow_ui_url']}")
    console.print(f"pachd address:     {report['pachd_address']}")
    console.print(
        f"Airflow settings:  {report['airflow_env_file']}  (connections: {report['connections_file']})"
    )
    console.print("Airflow UI:        make airflow-ui   (or `pachflow local airflow-ui`)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    try:
        settings = _settings(args)
    except (ValueError, StackError) as error:
        err.print(f"[red]error:[/] {error}")
        return 2
    try:
        if args.command == "up":
            up(settings, timeout=args.timeout, console=err)
            print_status(status(settings), out)
            return 0
        if args.command == "down":
            down(settings, timeout=args.timeout, console=err)
            return 0
        if args.command == "status":
            report = status(settings)
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                print_status(report, out)
            return 0 if report["running"] else EXIT_NOT_RUNNING
        if args.command == "env":
            for key, value in airflow_environment(settings).items():
                print(f"export {key}={shlex.quote(value)}")
            return 0
        if args.command == "airflow-ui":
            from pachflow_tools.local.airflow_ui import run_airflow_ui, ui_port

            return run_airflow_ui(settings, port=ui_port(args.port), console=err)
    except StackError as error:
        # The message holds paths and log lines: print it verbatim, not as rich markup.
        err.print(f"error: {error}", style="red", highlight=False, markup=False)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
