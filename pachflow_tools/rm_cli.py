"""``pachflow rm``: remove files from a branch in one new commit, e.g. a bad file pushed by mistake.

The pipelines downstream then run again on the branch without it. Earlier commits keep the file
(Pachyderm history is immutable), so lineage of past runs stays intact.
"""

from __future__ import annotations

import argparse
import sys

from pachflow.settings import parse_commit_ref
from pachflow_tools import cli_clients


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pachflow rm",
        description="Remove files from a branch in one new commit (the downstream pipelines re-run without them).",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="[PROJECT/]REPO@BRANCH:/PATH",
        help="file(s) to remove, e.g. raw_data@master:/junk.csv",
    )
    cli_clients.add_pachyderm_args(parser)
    return parser


def parse_target(text: str) -> tuple[str | None, str, str, str]:
    """``[project/]repo@branch:/path`` -> (project or None, repo, branch, path)."""
    ref, sep, path = text.partition(":")
    if not sep or not path.startswith("/") or path == "/":
        raise ValueError(f"{text!r}: expected [PROJECT/]REPO@BRANCH:/PATH (e.g. raw_data@master:/junk.csv)")
    project, repo, branch = parse_commit_ref(ref, "path")
    return project, repo, branch, path


def main(argv: list[str] | None = None) -> int:
    from pachyderm_sdk.api import pfs

    from pachflow.exceptions import PachydermNotFound
    from pachflow.waiting import require_repo

    args = build_parser().parse_args(argv)
    try:
        targets = [parse_target(t) for t in args.paths]
        if len({(p, r, b) for p, r, b, _ in targets}) != 1:
            raise ValueError("give paths of one branch per call (one commit)")
        project, repo, branch, _ = targets[0]
        if project:
            args.project = project
        client, project, _ = cli_clients.pachyderm(args)
        require_repo(client, project, repo)
        r = pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))
        b = pfs.Branch(repo=r, name=branch)
        if not client.pfs.branch_exists(b):
            raise PachydermNotFound(f"{project}/{repo} has no branch {branch!r}")
        head = client.pfs.inspect_branch(branch=b).head
        missing = [p for *_, p in targets if not client.pfs.path_exists(pfs.File(commit=head, path=p))]
        if missing:
            raise PachydermNotFound(f"{project}/{repo}@{branch} has no file {', '.join(missing)}")
        commit = client.pfs.start_commit(branch=b, description=f"pachflow rm {' '.join(args.paths)}")
        try:
            for *_, path in targets:
                client.pfs.delete_file(commit=commit, path=path)
        except BaseException:
            client.pfs.finish_commit(commit=commit, error="pachflow rm failed")
            raise
        client.pfs.finish_commit(commit=commit)
    except Exception as err:  # a bad value, or a service answered with an error: one line, no traceback
        print(cli_clients.failure_line("rm", err, args), file=sys.stderr)
        return 1
    print(f"removed {len(targets)} file(s) from {project}/{repo}@{branch} in commit {commit.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
