"""``pachflow lineage``: MLflow run -> Pachyderm commits, or Pachyderm commit -> MLflow runs and models."""

from __future__ import annotations

import argparse
import json
import sys

from pachflow.settings import parse_commit_ref
from pachflow_tools import cli_clients


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pachflow lineage",
        description="Follow lineage between MLflow runs and Pachyderm commits, in both directions.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="MLflow run id: show the Pachyderm commits that produced it")
    which.add_argument(
        "--commit",
        help="[PROJECT/]REPO@COMMIT_ID (or @BRANCH for its head): show every recorded training "
        "(MLflow run, model versions) that used it",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the lineage records (with their graph) as JSON"
    )
    parser.add_argument("--model-name", default=None, help="registered model to report (default: any)")
    parser.add_argument(
        "--train-repo", default=None, help="with --commit: only trainings of this pipeline (default: any)"
    )
    cli_clients.add_connection_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pachflow.lineage import lineage_for_commit, lineage_for_run, render_tree

    args = build_parser().parse_args(argv)
    try:
        if args.commit:
            project, repo, commit_id = parse_commit_ref(args.commit, "--commit")
            if project:
                args.project = project
        mlflow_client, _ = cli_clients.mlflow(args)
        client, project, _ = cli_clients.pachyderm(args)
        if args.run_id:
            # The run's own pachyderm.project tag says where its commits are.
            records = [lineage_for_run(mlflow_client, args.run_id, model_name=args.model_name, client=client)]
        else:
            if client is not None:  # an unknown repo, branch or commit: say so, no search
                commit_id = cli_clients.resolve_commit(client, project, repo, commit_id, args)
            records = lineage_for_commit(
                client,
                mlflow_client,
                project=project,
                repo=repo,
                commit_id=commit_id,
                train_repo=args.train_repo,
                model_name=args.model_name,
            )
    except Exception as err:  # a bad value, or a service answered with an error: one line, no traceback
        print(cli_clients.failure_line("lineage", err, args), file=sys.stderr)
        return 1
    notes = [_rejected_rows(mlflow_client, r) for r in records]
    if args.json:
        print(json.dumps(records[0] if args.run_id else records, indent=2, sort_keys=True, default=str))
    else:
        print("\n\n".join(render_tree(r) + note for r, note in zip(records, notes, strict=True)))
    return 0


def _rejected_rows(mlflow_client, record: dict) -> str:
    """Add the rows rejected upstream (recorded on the MLflow run) to ``record``; a line saying so."""
    from pachflow.rejects import rejected_rows_of_run

    run_id = record.get("mlflow_run_id")
    if not run_id or "rejected_rows" in record:
        total, by_commit = record.get("rejected_rows"), record.get("rejected_rows_by_commit") or {}
    else:
        total, by_commit = rejected_rows_of_run(mlflow_client.get_run(run_id))
        if total is not None:
            record["rejected_rows"], record["rejected_rows_by_commit"] = total, by_commit
    if total is None:
        return ""
    where = "; ".join(f"pachflow rejects {uri}" for uri, n in by_commit.items() if n)
    return f"\nrejected rows upstream: {total:,}" + (f" (see: {where})" if where else "")


if __name__ == "__main__":
    sys.exit(main())
