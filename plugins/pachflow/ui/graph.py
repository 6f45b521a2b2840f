"""Find the lineage records a lookup asks for and enrich every node of their graphs.

Records are those of :mod:`pachflow.lineage` (the CLI's ``--json`` shape). Enrichment adds a
``details`` dict and a ``url`` to each node, read live from pachd and MLflow: commit size and
times; the pipeline job of a pipeline's commit (state, datums, duration, reason); the MLflow run's
name, status and metrics; a model version's status and the aliases pointing at it now. A node
whose details cannot be read keeps ``details.error`` instead of failing the whole graph.
Credentials embedded in URLs are removed from everything returned.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pachflow.branches import commit_branch
from pachflow.exceptions import LineageError, NoBranchForCommit, one_line
from pachflow.links import console_commit_url, mlflow_run_url
from pachflow.ui.queries import Lookup

LINEAGE_KEY = "lineage"
MAX_METRICS = 6
_USERINFO_RE = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


@dataclass
class Services:
    """What a lookup talks to. ``client`` is None when pachd is not configured."""

    mlflow: Any
    client: Any | None
    project: str
    tracking_uri: str
    console_url: str = ""
    node_page: Callable[[str], str] = field(default=lambda commit: "")


# -- finding records -----------------------------------------------------------------------------
XComReader = Callable[[str, str, "str | None", Iterable[str]], list[tuple[str, str, Any]]]


def find_records(services: Services, q: Lookup, read_xcoms: XComReader | None = None) -> list[dict[str, Any]]:
    """The lineage records of ``q``; :class:`LineageError` when there is none."""
    from pachflow.lineage import lineage_for_commit, lineage_for_run

    if q.run_id:
        return [lineage_for_run(services.mlflow, q.run_id, client=services.client)]
    if q.model:
        mv = (
            services.mlflow.get_model_version(q.model, q.version)
            if q.version
            else services.mlflow.get_model_version_by_alias(q.model, q.alias)
        )
        if not mv.run_id:
            raise LineageError(f"model {q.model} version {mv.version} names no MLflow run")
        return [lineage_for_run(services.mlflow, mv.run_id, client=services.client, model_name=q.model)]
    if q.commit:
        return lineage_for_commit(
            services.client,
            services.mlflow,
            project=q.commit.project or services.project,
            repo=q.commit.repo,
            commit_id=q.commit.commit,
        )
    assert q.dag_id and q.dag_run_id and read_xcoms is not None
    return _records_of_dag_run(services, q, read_xcoms)


def _records_of_dag_run(services: Services, q: Lookup, read_xcoms: XComReader) -> list[dict[str, Any]]:
    """A task: its own ``lineage`` XCom, else the lineage of the MLflow run or commit it pushed, else
    the DAG run's. A DAG run: every ``lineage`` XCom of its tasks."""
    from pachflow.lineage import lineage_for_commit, lineage_for_run
    from pachflow.links import MLFLOW_RUN_KEY, PACHYDERM_COMMIT_KEY

    assert q.dag_id and q.dag_run_id
    if q.task_id:
        own = {key: value for _, key, value in read_xcoms(q.dag_id, q.dag_run_id, q.task_id, (
            LINEAGE_KEY, MLFLOW_RUN_KEY, PACHYDERM_COMMIT_KEY))}  # fmt: skip
        if isinstance(own.get(LINEAGE_KEY), dict):
            return [own[LINEAGE_KEY]]
        run = own.get(MLFLOW_RUN_KEY) or {}
        if run.get("run_id"):
            return [lineage_for_run(services.mlflow, run["run_id"], client=services.client)]
        commit = own.get(PACHYDERM_COMMIT_KEY) or {}
        if commit.get("commit_id") and services.client is not None:
            try:
                return lineage_for_commit(
                    services.client,
                    services.mlflow,
                    project=commit.get("project") or services.project,
                    repo=commit["repo"],
                    commit_id=commit["commit_id"],
                )
            except LineageError:
                pass  # nothing trained from it (yet): show the DAG run's lineage
    records = [
        value
        for _, _, value in read_xcoms(q.dag_id, q.dag_run_id, None, (LINEAGE_KEY,))
        if isinstance(value, dict) and value.get("graph")
    ]
    if not records:
        where = f"task {q.task_id} of " if q.task_id else ""
        raise LineageError(
            f"{where}DAG {q.dag_id} run {q.dag_run_id} recorded no lineage (no XCom {LINEAGE_KEY!r})"
        )
    return records


# -- enriching -----------------------------------------------------------------------------------
def enrich(services: Services, record: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with ``details`` and ``url`` on every graph node, and no credentials."""
    rec = scrub(copy.deepcopy(record))
    graph = rec.setdefault("graph", {"nodes": [], "edges": []})
    registered: dict[str, dict[str, str]] = {}
    for node in graph["nodes"]:
        kind = node.get("kind")
        try:
            if kind == "commit":
                node["details"] = _commit_details(services, node)
                node["url"] = _commit_url(services, node)
            elif kind == "mlflow_run":
                node["details"] = _run_details(services, node)
                node["url"] = node["details"].get("url", "")
            elif kind == "model_version":
                node["details"] = _version_details(services, node, registered)
                node["url"] = node["details"].get("url", "")
        except Exception as err:  # one unreadable node must not hide the rest of the graph
            node["details"] = {"error": scrub_text(one_line(err))}
            node.setdefault("url", "")
    rec["model_aliases"] = registered
    return scrub(rec)


def _commit_url(services: Services, node: dict[str, Any]) -> str:
    if services.console_url:
        return console_commit_url(services.console_url, node["project"], node["repo"], node["commit"])
    return services.node_page(node["id"])


def _commit_details(services: Services, node: dict[str, Any]) -> dict[str, Any]:
    if services.client is None:
        return {"error": "pachd is not configured (Airflow connection pachyderm_default)"}
    from pachflow.contract import pfs_commit
    from pachflow.rejects import META_REJECTED_ROWS

    info = services.client.pfs.inspect_commit(
        commit=pfs_commit(node["project"], node["repo"], node["commit"])
    )
    details: dict[str, Any] = {
        "size_bytes": int(info.details.size_bytes if info.details else info.size_bytes_upper_bound),
        "started": _iso(info.started),
        "finished": _iso(info.finished),
        "branch": _branch(services.client, node, info),
    }
    if info.error:
        details["commit_error"] = info.error
    rejected = (info.metadata or {}).get(META_REJECTED_ROWS)
    if rejected is not None and rejected.isdigit():
        details["rejected_rows"] = int(rejected)
    if node.get("pipeline"):
        details["job"] = _job(services.client, node)
    return details


def _branch(client: Any, node: dict[str, Any], info: Any) -> str:
    try:
        return commit_branch(client, node["project"], node["repo"], node["commit"], info=info)
    except NoBranchForCommit:
        return ""


def _job(client: Any, node: dict[str, Any]) -> dict[str, Any]:
    import grpc
    from pachyderm_sdk.api import pfs, pps

    from pachflow.waiting import job_summary

    job = pps.Job(
        pipeline=pps.Pipeline(name=node["repo"], project=pfs.Project(name=node["project"])), id=node["commit"]
    )
    try:
        info = client.pps.inspect_job(job=job)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            return {"state": "none", "reason": "no job (the commit was not made by a pipeline run)"}
        raise
    summary = job_summary(info)
    started, finished = _iso(info.started), _iso(info.finished)
    summary["started"], summary["finished"] = started, finished
    summary["duration_s"] = (
        round((info.finished - info.started).total_seconds(), 3) if started and finished else None
    )
    return summary


def _run_details(services: Services, node: dict[str, Any]) -> dict[str, Any]:
    run = services.mlflow.get_run(node["run_id"])
    metrics = dict(sorted(run.data.metrics.items())[:MAX_METRICS])
    experiment_id = run.info.experiment_id or node.get("experiment_id") or "0"
    return {
        "run_name": run.info.run_name or "",
        "status": run.info.status,
        "metrics": metrics,
        "start_time": _iso_ms(run.info.start_time),
        "end_time": _iso_ms(run.info.end_time),
        "url": mlflow_run_url(services.tracking_uri, experiment_id, node["run_id"])
        if services.tracking_uri
        else "",
    }


def _version_details(
    services: Services, node: dict[str, Any], registered: dict[str, dict[str, str]]
) -> dict[str, Any]:
    name, version = node["name"], str(node["version"])
    mv = services.mlflow.get_model_version(name, version)
    if name not in registered:
        aliases = services.mlflow.get_registered_model(name).aliases or {}
        registered[name] = {a: str(v) for a, v in sorted(aliases.items())}
    node["aliases"] = sorted(
        a for a, v in registered[name].items() if v == version
    )  # now, not at record time
    url = ""
    if services.tracking_uri:
        url = f"{services.tracking_uri.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{version}"
    return {
        "status": str(mv.status),
        "created": _iso_ms(mv.creation_timestamp),
        "run_id": mv.run_id,
        "aliases": node["aliases"],
        "url": url,
    }


# -- small helpers -------------------------------------------------------------------------------
def scrub_text(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://host``."""
    return _USERINFO_RE.sub(r"\1", text)


def scrub(value: Any) -> Any:
    """Remove URL credentials from every string of a JSON-like value (in place for dicts and lists)."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        for k in list(value):
            value[k] = scrub(value[k])
        return value
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def _iso(ts: datetime | None) -> str | None:
    from pachflow.waiting import is_set

    return ts.isoformat(timespec="seconds") if is_set(ts) else None


def _iso_ms(ms: int | None) -> str | None:
    if not ms:
        return None
    from datetime import UTC

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")
