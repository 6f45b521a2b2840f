"""``pachflow rollback``: the command-line face of :mod:`pachflow.rollback` (plan, then apply all or nothing)."""

from __future__ import annotations

import argparse
import json
import sys

from pachflow.settings import parse_commit_ref
from pachflow_tools import cli_clients


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pachflow rollback",
        description="Move a registered model's alias back to the version of an earlier run and, with --data, "
        "every source repo's branch back to the commit that run was trained on: all of it, or nothing.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--to-run-id", help="MLflow run whose model version the alias goes back to")
    which.add_argument(
        "--to-commit",
        help="[PROJECT/]REPO@COMMIT_ID: the training run behind this commit (instead of a run id)",
    )
    parser.add_argument("--model-name", required=True, help="registered MLflow model")
    parser.add_argument("--alias", required=True, help="alias of the model to move (it must exist)")
    parser.add_argument(
        "--create-alias", action="store_true", help="create the alias when the model does not have it"
    )
    parser.add_argument(
        "--data",
        action="store_true",
        help="also move every source repo's branch back to the commit the run was trained on "
        "(one Pachyderm transaction; the pipelines re-run once)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    parser.add_argument("--json", action="store_true", help="print the plan or result as JSON")
    cli_clients.add_connection_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pachflow.rollback import apply_rollback, dry_run_result, plan_rollback

    args = build_parser().parse_args(argv)
    try:
        mlflow_client, _ = cli_clients.mlflow(args)
        client, project, conn_project = None, args.project, None
        if args.data or args.to_commit:
            if args.no_pachyderm:
                raise ValueError("--data and --to-commit need pachd: drop --no-pachyderm")
            client, conn_project, _ = cli_clients.pachyderm(args)
            # a connection's project counts as given; with --pachd-address only --project does
            project = args.project or (None if args.pachd_address else conn_project)
        to_commit = args.to_commit
        if to_commit:  # an unknown repo, branch or commit: say which, before any search
            given_project, repo, ref = parse_commit_ref(to_commit, "--to-commit")
            where = given_project or project or conn_project
            to_commit = f"{where}/{repo}@{cli_clients.resolve_commit(client, where, repo, ref, args)}"
        plan = plan_rollback(
            mlflow_client,
            client,
            model_name=args.model_name,
            alias=args.alias,
            to_run_id=args.to_run_id,
            to_commit=to_commit,
            data=args.data,
            project=project,
            create_alias=args.create_alias,
        )
        if args.dry_run:
            result = dry_run_result(plan)
        else:
            result = apply_rollback(plan, mlflow_client, client, reason="pachflow rollback (CLI)")
    except Exception as err:  # a bad value, or a service answered with an error: one line, no traceback
        print(cli_clients.failure_line("rollback", err, args), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    elif args.dry_run:
        print("dry run, nothing changed; the plan:\n" + plan.describe())
    else:
        print(plan.describe())
        if result["commit_set"]:
            print(f"pipelines re-run in commit set {result['commit_set']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
