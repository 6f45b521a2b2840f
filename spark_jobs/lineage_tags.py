"""The MLflow run tags of the lineage contract (DESIGN.md), built from the worker environment.

``pachyderm.address``, ``pachyderm.pipeline``, ``pachyderm.job``, ``pachyderm.commit`` and
``pachyderm.provenance.<repo>`` for every upstream repo. The direct input's commit comes from
``<input>_COMMIT``; the rest of the chain (back to raw_data) is read from pachd's commit
provenance when pachd is reachable. When it is not, that is logged and the Airflow lineage
task completes the tags later.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from spark_jobs.worker_env import PachydermContext

log = logging.getLogger("pachflow.lineage")

PACHD_CONNECT_TIMEOUT_S = 3.0
PROVENANCE_TIMEOUT_S = 20.0


def airflow_tags(env: dict[str, str] | None = None) -> dict[str, str]:
    """``airflow.dag_id`` / ``airflow.run_id`` when Airflow (or the operator) put them in env."""
    env = os.environ if env is None else env
    dag_id = env.get("AIRFLOW_CTX_DAG_ID") or env.get("PACHFLOW_AIRFLOW_DAG_ID") or ""
    run_id = env.get("AIRFLOW_CTX_DAG_RUN_ID") or env.get("PACHFLOW_AIRFLOW_RUN_ID") or ""
    return {k: v for k, v in {"airflow.dag_id": dag_id, "airflow.run_id": run_id}.items() if v}


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=PACHD_CONNECT_TIMEOUT_S):
            return True
    except (OSError, ValueError):
        return False


def _walk_provenance(address: str, project: str, repo: str, commit_id: str) -> dict[str, str]:
    from pachyderm_sdk import Client
    from pachyderm_sdk.api import pfs

    client = Client.from_pachd_address(address)
    start = pfs.Commit(repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)), id=commit_id)
    found: dict[str, str] = {}
    queue, seen = [start], set()
    while queue:
        commit = queue.pop()
        key = (commit.repo.project.name, commit.repo.name, commit.repo.type, commit.id)
        if key in seen:
            continue
        seen.add(key)
        info = client.pfs.inspect_commit(commit=commit)
        for upstream in info.direct_provenance:
            if upstream.repo.type in ("", "user"):
                found.setdefault(upstream.repo.name, upstream.id)
                queue.append(upstream)
    return found


def provenance_from_pachd(ctx: PachydermContext, timeout_s: float = PROVENANCE_TIMEOUT_S) -> dict[str, str]:
    """repo -> commit id of every upstream user repo of this job's output commit ({} if unknown)."""
    if not (ctx.address and ctx.pipeline and ctx.output_commit):
        return {}
    if not _reachable(ctx.address):
        log.warning(
            "pachd at %s is not reachable; provenance tags are left to the Airflow lineage task", ctx.address
        )
        return {}
    result: dict[str, str] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.update(
                _walk_provenance(ctx.address, ctx.project or "default", ctx.pipeline, ctx.output_commit)
            )
        except Exception as exc:  # any RPC failure only loses optional tags
            errors.append(exc)

    thread = threading.Thread(target=run, name="provenance-walk", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        log.warning("reading provenance from pachd at %s took over %.0fs; skipped", ctx.address, timeout_s)
        return {}
    if errors:
        log.warning("could not read provenance from pachd at %s: %s", ctx.address, errors[0])
        return {}
    log.info(
        "provenance from pachd: %s", ", ".join(f"{r}@{c}" for r, c in sorted(result.items())) or "(none)"
    )
    return result


def lineage_tags(ctx: PachydermContext, provenance: dict[str, str] | None = None) -> dict[str, str]:
    """All lineage tags known for this run (empty values are left out)."""
    tags = {
        "pachyderm.address": ctx.address,
        "pachyderm.project": ctx.project,
        "pachyderm.pipeline": ctx.pipeline,
        "pachyderm.job": ctx.job_id,
        "pachyderm.commit": ctx.output_commit,
    }
    for repo, commit in {**ctx.input_commits, **(provenance or {})}.items():
        tags[f"pachyderm.provenance.{repo}"] = commit
    tags.update(airflow_tags())
    return {k: v for k, v in tags.items() if v}
