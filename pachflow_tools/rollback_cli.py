"""``pachflow rollback``: the command-line face of :func:`pachflow.rollback.rollback`."""

from __future__ import annotations

import argparse
import json
import sys

from pachflow.lineage import CHAMPION, MODEL_NAME, RAW_REPO, TRAIN_REPO, LineageError
from pachflow.rollback import rollback
from pachflow_tools import cli_clients


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pachflow rollback",
        description="Move the registered model's champion alias back to an earlier run (and optionally the raw data).",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--to-run-id", help="MLflow run whose model becomes champion again")
    which.add_argument("--to-commit", help="REPO@COMMIT_ID whose training run becomes champion again")
    parser.add_argument(
        "--data", action="store_true", help="also move raw_data@master back to that run's raw commit"
    )
    parser.add_argument("--raw-repo", default=RAW_REPO, help="repo of the raw data (with --data)")
    parser.add_argument("--train-repo", default=TRAIN_REPO, help="repo of the training pipeline")
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument("--alias", default=CHAMPION)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    cli_clients.add_connection_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        mlflow_client, _ = cli_clients.mlflow(args)
        client, project, _ = (
            cli_clients.pachyderm(args)
            if (args.data or args.to_commit)
            else (None, args.project or "default", "")
        )
        result = rollback(
            mlflow_client,
            client,
            to_run_id=args.to_run_id,
            to_commit=args.to_commit,
            model_name=args.model_name,
            alias=args.alias,
            data=args.data,
            project=project,
            raw_repo=args.raw_repo,
            train_repo=args.train_repo,
            reason="pachflow rollback (CLI)",
        )
    except (LineageError, ValueError, ConnectionError) as err:
        print(f"pachflow rollback: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # MLflow or pachd answered with an error: say which, without a traceback
        print(f"pachflow rollback: {cli_clients.describe_error(err, args)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        print(
            f"{result['model_name']}@{result['alias']}: version {result['from_version']} -> {result['to_version']} "
            f"(run {result['mlflow_run_id']})"
        )
        if result["data"]:
            d = result["data"]
            print(
                f"{d['branch']}: {d['from_commit']} -> {d['to_commit']}"
                + ("" if d["moved"] else " (already there)")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
