"""``pachflow rejects``: the rows a pipeline rejected in one of its commits (per file: count, first reasons)."""

from __future__ import annotations

import argparse
import json
import sys

from pachflow.settings import parse_commit_ref
from pachflow_tools import cli_clients


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pachflow rejects",
        description="Show the rows a pipeline rejected in a commit: the per-file summaries it wrote "
        "under --dir (count, first reasons, where the rejected rows are).",
    )
    parser.add_argument(
        "commit", help="[PROJECT/]REPO@COMMIT_ID or [PROJECT/]REPO@BRANCH (e.g. split_data@master)"
    )
    parser.add_argument(
        "--dir", default="/rejects", help="directory of the summaries in the commit (default /rejects)"
    )
    parser.add_argument("--reasons", type=int, default=5, help="first reasons to show per file (default 5)")
    parser.add_argument("--json", action="store_true", help="print the summaries as JSON")
    cli_clients.add_pachyderm_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pachflow.rejects import describe, read_rejects

    args = build_parser().parse_args(argv)
    try:
        project, repo, ref = parse_commit_ref(args.commit, "commit")
        if project:
            args.project = project
        client, project, _ = cli_clients.pachyderm(args)
        commit_id = cli_clients.resolve_commit(client, project, repo, ref, args)
        report = read_rejects(client, project, repo, commit_id, args.dir)
    except Exception as err:  # a bad value, or a service answered with an error: one line, no traceback
        print(cli_clients.failure_line("rejects", err, args), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(describe(report, first=args.reasons)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
