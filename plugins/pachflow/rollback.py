"""Point the champion model (and optionally raw_data@master) back to an earlier training.

``pachflow rollback --to-run-id ID [--data]`` and the ``fraud_model_rollback`` DAG both call
:func:`rollback`. The model side is an alias move (no compute). With ``data``, raw_data@master is
set back to the raw commit that run was trained on; Pachyderm then re-runs the pipelines
incrementally on it (a new job, not a re-pointed old output).
"""

from __future__ import annotations

import json
import time
from typing import Any

from pachflow.lineage import CHAMPION, MODEL_NAME, RAW_REPO, TRAIN_REPO, LineageError


def rollback(
    mlflow_client: Any,
    client: Any | None,
    *,
    to_run_id: str | None = None,
    to_commit: str | None = None,
    model_name: str = MODEL_NAME,
    alias: str = CHAMPION,
    data: bool = False,
    project: str = "default",
    raw_repo: str = RAW_REPO,
    train_repo: str = TRAIN_REPO,
    reason: str = "",
) -> dict[str, Any]:
    """Move ``alias`` of ``model_name`` to the version of ``to_run_id`` (or of the run behind ``to_commit``)."""
    from pachflow.lineage import lineage_for_commit, lineage_for_run

    if bool(to_run_id) == bool(to_commit):
        raise ValueError("give exactly one of to_run_id or to_commit")
    if to_commit:
        repo, _, commit_id = to_commit.rpartition("@") if "@" in to_commit else (train_repo, "", to_commit)
        records = lineage_for_commit(
            client,
            mlflow_client,
            project=project,
            repo=repo.rpartition("/")[2] or train_repo,
            commit_id=commit_id,
            train_repo=train_repo,
            model_name=model_name,
        )
        exact = [r for r in records if r["commit_set"] == commit_id]
        to_run_id = (exact or records)[0]["mlflow_run_id"]
    record = lineage_for_run(mlflow_client, to_run_id, model_name=model_name)
    versions = [
        mv for mv in mlflow_client.search_model_versions(f"run_id = '{to_run_id}'") if mv.name == model_name
    ]
    if not versions:
        raise LineageError(
            f"run {to_run_id} has no version of registered model {model_name!r}; record its lineage first"
        )
    version = str(min(int(v.version) for v in versions))
    try:
        previous = str(mlflow_client.get_model_version_by_alias(model_name, alias).version)
    except Exception:
        previous = None
    mlflow_client.set_registered_model_alias(model_name, alias, version)
    result: dict[str, Any] = {
        "action": "rollback",
        "model_name": model_name,
        "alias": alias,
        "from_version": previous,
        "to_version": version,
        "mlflow_run_id": to_run_id,
        "lineage": record,
        "data": None,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "reason": reason,
    }
    if data:
        result["data"] = _move_raw_branch(client, project, raw_repo, record)
    summary = {k: result[k] for k in ("from_version", "to_version", "mlflow_run_id", "at", "reason")}
    summary["raw_commit"] = (result["data"] or {}).get("to_commit")
    mlflow_client.set_registered_model_tag(model_name, "pachflow.last_rollback", json.dumps(summary))
    mlflow_client.set_model_version_tag(model_name, version, "pachflow.rolled_back_to_at", result["at"])
    return result


def _move_raw_branch(client: Any, project: str, raw_repo: str, record: dict[str, Any]) -> dict[str, Any]:
    from pachyderm_sdk.api import pfs

    if client is None:
        raise ValueError("moving raw data back needs pachd (drop --no-pachyderm)")
    raw_commit = record["commits"].get(raw_repo)
    if not raw_commit:
        raise LineageError(f"run {record['mlflow_run_id']} has no {raw_repo} commit in its lineage")
    repo = pfs.Repo(name=raw_repo, type="user", project=pfs.Project(name=project))
    branch = pfs.Branch(repo=repo, name="master")
    head = client.pfs.inspect_branch(branch=branch).head.id
    if head == raw_commit:
        return {
            "branch": f"{project}/{raw_repo}@master",
            "from_commit": head,
            "to_commit": raw_commit,
            "moved": False,
        }
    client.pfs.create_branch(branch=branch, head=pfs.Commit(repo=repo, id=raw_commit))
    return {
        "branch": f"{project}/{raw_repo}@master",
        "from_commit": head,
        "to_commit": raw_commit,
        "moved": True,
    }
