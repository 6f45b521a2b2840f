"""Rows a pipeline rejected: read its per-file summaries, describe them, carry the count into lineage.

The contract, for any pipeline that wants its rejected rows seen (nothing here knows a pipeline):
- its output commit holds one JSON summary per input file under a directory (``/rejects`` by
  default): ``{"file": "repo@commit:/path", "rows": int, "rejected": int, "reasons": {kind: count},
  "first": [{"line": int, "reason": str}, ...], "rejects_file": "/rejects/<name>.csv" or null}``;
- a reader that has looked at them (the commit sensor with ``report_rejects``) writes the total on
  that commit's metadata as ``pachflow.rejected_rows``;
- :func:`attach_rejected_rows` sums that key over a lineage record's commits into the record
  (``rejected_rows``) and the MLflow run (metric ``rejected_rows``, tag
  ``pachflow.rejected_rows_by_commit``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pachyderm_sdk import Client

log = logging.getLogger(__name__)
DEFAULT_DIR = "/rejects"
META_REJECTED_ROWS = "pachflow.rejected_rows"
METRIC = "rejected_rows"
TAG_BY_COMMIT = "pachflow.rejected_rows_by_commit"  # "project/repo@commit=N,..." on the MLflow run


@dataclass
class RejectsReport:
    """The summaries found in ``uri`` (``project/repo@commit``) under ``directory``."""

    uri: str
    directory: str
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(int(f.get("rejected") or 0) for f in self.files)

    @property
    def rows(self) -> int:
        return sum(int(f.get("rows") or 0) for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.uri,
            "directory": self.directory,
            "rejected_rows": self.rejected,
            "rows": self.rows,
            "files": self.files,
        }


def read_rejects(
    client: Client, project: str, repo: str, commit_id: str, directory: str = DEFAULT_DIR
) -> RejectsReport:
    """Every ``*.json`` summary directly under ``directory`` of the commit (none: an empty report)."""
    import grpc
    from pachyderm_sdk.api import pfs

    directory = "/" + directory.strip("/")
    commit = pfs.Commit(
        repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)), id=commit_id
    )
    report = RejectsReport(f"{project}/{repo}@{commit_id}", directory)
    try:
        infos = list(client.pfs.list_file(file=pfs.File(commit=commit, path=directory)))
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            return report
        raise
    for info in sorted(infos, key=lambda i: i.file.path):
        if not info.file.path.endswith(".json"):
            continue
        raw = b"".join(
            c.value for c in client.pfs.get_file(file=pfs.File(commit=commit, path=info.file.path))
        )
        try:
            summary = json.loads(raw)
        except ValueError:
            log.warning("%s:%s is not JSON; skipped", report.uri, info.file.path)
            continue
        if isinstance(summary, dict):
            report.files.append(summary)
    return report


def describe(report: RejectsReport, *, first: int = 3) -> list[str]:
    """Lines for a log or a terminal: the total, then per file with rejects its count, first reasons
    and where its rejected rows are."""
    if not report.files:
        return [f"{report.uri}: no reject summaries under {report.directory}"]
    lines = [
        f"{report.uri}: {report.rejected:,} of {report.rows:,} rows rejected in {len(report.files)} file(s)"
    ]
    for f in report.files:
        rejected = int(f.get("rejected") or 0)
        if not rejected:
            continue
        where = f" (all of them: {report.uri}:{f['rejects_file']})" if f.get("rejects_file") else ""
        lines.append(
            f"  {f.get('file', '?')}: {rejected:,} of {int(f.get('rows') or 0):,} rows rejected{where}"
        )
        for item in (f.get("first") or [])[:first]:
            lines.append(f"    line {item.get('line')}: {item.get('reason')}")
    return lines


def record_on_commit(client: Client, project: str, repo: str, commit_id: str, rejected: int) -> None:
    """Write the total on the commit's metadata (``pachflow.rejected_rows``), for lineage to pick up."""
    from pachflow.lineage import write_commit_metadata

    write_commit_metadata(client, project, repo, commit_id, {META_REJECTED_ROWS: str(rejected)})


def rejected_rows_of_run(run: Any) -> tuple[int | None, dict[str, int]]:
    """(total, per commit) an MLflow run carries (see :func:`attach_rejected_rows`); (None, {}) if none."""
    total = run.data.metrics.get(METRIC)
    by_commit = {}
    for item in (run.data.tags.get(TAG_BY_COMMIT) or "").split(","):
        uri, _, count = item.rpartition("=")
        if uri and count.isdigit():
            by_commit[uri] = int(count)
    return (None if total is None else int(total)), by_commit


def attach_rejected_rows(
    client: Client, mlflow_client: MlflowClient | None, record: dict[str, Any]
) -> int | None:
    """Sum ``pachflow.rejected_rows`` over the record's commits into ``record["rejected_rows"]`` (with
    ``rejected_rows_by_commit``) and the run's ``rejected_rows`` metric; None when no commit has it."""
    from pachflow.contract import pfs_commit

    by_commit = {}
    for node in (record.get("graph") or {}).get("nodes", []):
        project, repo, commit = node.get("project"), node.get("repo"), node.get("commit")
        if not (project and repo and commit):
            continue
        meta = client.pfs.inspect_commit(commit=pfs_commit(project, repo, commit)).metadata or {}
        if META_REJECTED_ROWS in meta:
            try:
                by_commit[f"{project}/{repo}@{commit}"] = int(meta[META_REJECTED_ROWS])
            except ValueError:
                log.warning("%s/%s@%s: %s is not a number", project, repo, commit, META_REJECTED_ROWS)
    if not by_commit:
        return None
    total = sum(by_commit.values())
    record["rejected_rows"] = total
    record["rejected_rows_by_commit"] = by_commit
    run_id = record.get("mlflow_run_id")
    if mlflow_client is not None and run_id:
        mlflow_client.log_metric(run_id, METRIC, total)
        mlflow_client.set_tag(run_id, TAG_BY_COMMIT, ",".join(f"{c}={n}" for c, n in by_commit.items()))
    return total
