"""MLflow run <-> Pachyderm commit lineage: record it, and look it up in both directions.

Names follow the lineage contract in DESIGN.md:
- MLflow run tags and model-version tags ``pachyderm.address``, ``pachyderm.pipeline``,
  ``pachyderm.job``, ``pachyderm.commit``, ``pachyderm.provenance.<repo>``,
  ``airflow.dag_id``, ``airflow.run_id``;
- metadata on the training pipeline's output commit ``mlflow.run_id``,
  ``mlflow.experiment_id``, ``mlflow.tracking_uri``, ``mlflow.model_uri``,
  ``mlflow.model_version``, ``airflow.dag_id``, ``airflow.run_id``;
- the ``lineage`` record ``{commit_set, commits: {repo: id}, mlflow_run_id,
  mlflow_experiment_id, model_uri, model_version}`` (plus a few descriptive extras).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pachflow.exceptions import LineageError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pachyderm_sdk import Client

log = logging.getLogger(__name__)

TRAIN_REPO = "ml_train"
RAW_REPO = "raw_data"
RUN_FILE = "/mlflow_run.json"
MODEL_NAME = "fraud-detector"
CHAMPION = "champion"
PROVENANCE_PREFIX = "pachyderm.provenance."
RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class TrainRun:
    """What the training job wrote into its output commit about its MLflow run."""

    run_id: str
    experiment_id: str = ""
    tracking_uri: str = ""
    model_uri: str = ""
    metrics: dict[str, Any] | None = None


# -- Pachyderm side ------------------------------------------------------------------------------
def _repo(project: str, repo: str):
    from pachyderm_sdk.api import pfs

    return pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))


def _commit(project: str, repo: str, commit_id: str):
    from pachyderm_sdk.api import pfs

    return pfs.Commit(repo=_repo(project, repo), id=commit_id)


def commit_picker(project: str, repo: str, commit_id: str):
    from pachyderm_sdk.api import pfs

    return pfs.CommitPicker(
        id=pfs.CommitPickerCommitByGlobalId(
            repo=pfs.RepoPicker(
                name=pfs.RepoPickerRepoName(project=pfs.ProjectPicker(name=project), name=repo, type="user")
            ),
            id=commit_id,
        )
    )


def read_train_run(
    client: Client, project: str, repo: str, commit_id: str, run_file: str = RUN_FILE
) -> TrainRun:
    """Read the MLflow run the training job wrote into its output commit.

    ``mlflow_run.json`` first; failing that, an empty file named by a 32-hex run id (the
    original demo's convention).
    """
    from pachyderm_sdk.api import pfs

    commit = _commit(project, repo, commit_id)
    file = pfs.File(commit=commit, path=run_file)
    if client.pfs.path_exists(file):
        raw = b"".join(chunk.value for chunk in client.pfs.get_file(file=file))
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            raise LineageError(
                f"{project}/{repo}@{commit_id}:{run_file}: line {err.lineno}: invalid JSON"
            ) from err
        run_id = data.get("run_id") or data.get("mlflow_run_id")
        if not run_id:
            raise LineageError(f"{project}/{repo}@{commit_id}:{run_file}: field run_id is missing")
        return TrainRun(
            run_id=run_id,
            experiment_id=str(data.get("experiment_id") or ""),
            tracking_uri=data.get("tracking_uri") or "",
            model_uri=data.get("model_uri") or "",
            metrics=data.get("metrics"),
        )
    for info in client.pfs.list_file(file=pfs.File(commit=commit, path="/")):
        name = info.file.path.strip("/")
        if RUN_ID_RE.match(name):
            return TrainRun(run_id=name)
    raise LineageError(
        f"{project}/{repo}@{commit_id} holds no {run_file} and no file named by an MLflow run id"
    )


def provenance(client: Client, project: str, repo: str, commit_id: str) -> dict[str, str]:
    """Commits of every upstream user repo of ``repo@commit_id``, upstream first, the commit itself last."""
    import grpc

    try:
        infos = list(client.pfs.walk_commit_provenance(start=[commit_picker(project, repo, commit_id)]))
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        infos = _walk_direct_provenance(client, project, repo, commit_id)
    found: dict[str, str] = {}
    for info in infos:  # nearest first; keep the nearest commit of each repo
        c = info.commit
        if (c.repo.type or "user") != "user" or c.repo.name == repo:
            continue
        found.setdefault(c.repo.name, c.id)
    ordered = dict(reversed(list(found.items())))
    ordered[repo] = commit_id
    return ordered


def _walk_direct_provenance(client: Client, project: str, repo: str, commit_id: str) -> list[Any]:
    """Breadth-first walk over ``direct_provenance`` (for servers without WalkCommitProvenance)."""
    seen: set[tuple[str, str]] = set()
    queue = [_commit(project, repo, commit_id)]
    out = []
    while queue:
        info = client.pfs.inspect_commit(commit=queue.pop(0))
        for parent in info.direct_provenance:
            key = (parent.repo.name, parent.id)
            if key in seen:
                continue
            seen.add(key)
            parent_info = client.pfs.inspect_commit(commit=parent)
            out.append(parent_info)
            queue.append(parent)
    return out


def commit_metadata(client: Client, project: str, repo: str, commit_id: str) -> dict[str, str]:
    return dict(client.pfs.inspect_commit(commit=_commit(project, repo, commit_id)).metadata or {})


def write_commit_metadata(
    client: Client, project: str, repo: str, commit_id: str, values: dict[str, str]
) -> None:
    """Upsert keys on a commit's metadata in one transaction (``edit_key`` is an upsert: retry-safe)."""
    from pachyderm_sdk.api import metadata

    picker = commit_picker(project, repo, commit_id)
    edits = [
        metadata.Edit(commit=picker, edit_key=metadata.EditEditKey(key=k, value=str(v)))
        for k, v in values.items()
    ]
    client.metadata.edit_metadata(edits=edits)


# -- recording -----------------------------------------------------------------------------------
def lineage_tags(
    *, address: str, pipeline: str, commit_set: str, commits: dict[str, str], dag_id: str, run_id: str
) -> dict[str, str]:
    tags = {
        "pachyderm.address": address,
        "pachyderm.pipeline": pipeline,
        "pachyderm.job": commit_set,  # job id == commit-set id == output commit id
        "pachyderm.commit": commit_set,
        "airflow.dag_id": dag_id,
        "airflow.run_id": run_id,
    }
    tags.update({f"{PROVENANCE_PREFIX}{repo}": cid for repo, cid in commits.items() if repo != pipeline})
    return tags


def register_version(
    mlflow_client: MlflowClient, tracking_uri: str, *, model_name: str, run: TrainRun, tags: dict[str, str]
) -> str:
    """Return the registered version for ``run``: the existing one (retry-safe) or a new one."""
    existing = [
        mv for mv in mlflow_client.search_model_versions(f"run_id = '{run.run_id}'") if mv.name == model_name
    ]
    if existing:
        version = str(min(int(mv.version) for mv in existing))
        log.info(
            "Model %s already has version %s for run %s; not registering again",
            model_name,
            version,
            run.run_id,
        )
    else:
        import mlflow

        model_uri = run.model_uri or f"runs:/{run.run_id}/model"
        with _fluent_mlflow_at(tracking_uri):
            registered = mlflow.register_model(model_uri, model_name, tags=tags, await_registration_for=120)
        version = str(registered.version)
        log.info("Registered %s as %s version %s", model_uri, model_name, version)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)
    return version


@contextmanager
def _fluent_mlflow_at(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``mlflow.register_model``) at ``tracking_uri`` for one block.

    ``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI into the
    process environment; restore both afterwards so the task leaves no MLflow target behind.
    """
    import mlflow

    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


def record_lineage(
    client: Client,
    mlflow_client: MlflowClient,
    *,
    project: str,
    address: str,
    tracking_uri: str,
    commit_set: str,
    dag_id: str,
    airflow_run_id: str,
    train_repo: str = TRAIN_REPO,
    raw_repo: str = RAW_REPO,
    model_name: str = MODEL_NAME,
    alias: str | None = CHAMPION,
) -> dict[str, Any]:
    """Write the lineage of ``train_repo@commit_set`` everywhere and return the ``lineage`` record.

    Safe to run again for the same commit: tags and metadata are upserts and the model version
    is looked up by run id before registering.
    """
    from mlflow.entities import RunTag

    run = read_train_run(client, project, train_repo, commit_set)
    commits = provenance(client, project, train_repo, commit_set)
    if raw_repo not in commits:
        raise LineageError(
            f"provenance of {project}/{train_repo}@{commit_set} does not reach {raw_repo}: found {list(commits)}"
        )
    mlflow_run = mlflow_client.get_run(run.run_id)
    experiment_id = run.experiment_id or mlflow_run.info.experiment_id
    # Normally the run was trained by this commit set's job. When that job skipped its datum (e.g.
    # a forced, identical push after a reprocessing update), it carried an earlier job's model over:
    # the run's tags then describe the commit set it was really trained in, and both training
    # commits point at the run in their metadata.
    trained_in = mlflow_run.data.tags.get("pachyderm.commit") or commit_set
    trained_commits = commits
    if trained_in != commit_set:
        log.info(
            "Run %s was trained in commit set %s; %s reuses its model", run.run_id, trained_in, commit_set
        )
        trained_commits = provenance(client, project, train_repo, trained_in)
    tags = lineage_tags(
        address=address,
        pipeline=train_repo,
        commit_set=trained_in,
        commits=trained_commits,
        dag_id=dag_id,
        run_id=airflow_run_id,
    )
    mlflow_client.log_batch(run.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    version = register_version(mlflow_client, tracking_uri, model_name=model_name, run=run, tags=tags)
    if alias:
        mlflow_client.set_registered_model_alias(model_name, alias, version)
    model_uri = run.model_uri or f"models:/{model_name}/{version}"
    metadata = {
        "mlflow.run_id": run.run_id,
        "mlflow.experiment_id": experiment_id,
        "mlflow.tracking_uri": tracking_uri,
        "mlflow.model_uri": model_uri,
        "mlflow.model_version": version,
        "mlflow.model_name": model_name,
        "airflow.dag_id": dag_id,
        "airflow.run_id": airflow_run_id,
    }
    for commit in dict.fromkeys([trained_in, commit_set]):
        write_commit_metadata(client, project, train_repo, commit, metadata)
    return {
        "commit_set": commit_set,
        "commits": commits,
        "mlflow_run_id": run.run_id,
        "mlflow_experiment_id": experiment_id,
        "model_uri": model_uri,
        "model_version": version,
        "model_name": model_name,
        "tracking_uri": tracking_uri,
        "pachyderm_address": address,
        "project": project,
        "airflow": {"dag_id": dag_id, "run_id": airflow_run_id},
    }


# -- lookup --------------------------------------------------------------------------------------
def lineage_for_run(
    mlflow_client: MlflowClient,
    run_id: str,
    *,
    model_name: str | None = None,
    client: Client | None = None,
    project: str = "default",
) -> dict[str, Any]:
    """Lineage of an MLflow run from its tags; with pachd, the commit chain is re-read from provenance
    and compared with the training commit's metadata (``consistent``)."""
    run = mlflow_client.get_run(run_id)
    tags = run.data.tags
    commit_set = tags.get("pachyderm.commit")
    if not commit_set:
        raise LineageError(f"MLflow run {run_id} has no pachyderm.commit tag: its lineage was never recorded")
    pipeline = tags.get("pachyderm.pipeline", TRAIN_REPO)
    commits = {k[len(PROVENANCE_PREFIX) :]: v for k, v in tags.items() if k.startswith(PROVENANCE_PREFIX)}
    commits = _upstream_first(commits)
    commits[pipeline] = commit_set
    versions = [
        mv
        for mv in mlflow_client.search_model_versions(f"run_id = '{run_id}'")
        if not model_name or mv.name == model_name
    ]
    out: dict[str, Any] = {
        "commit_set": commit_set,
        "commits": commits,
        "mlflow_run_id": run_id,
        "mlflow_experiment_id": run.info.experiment_id,
        "model_uri": (versions[0].source if versions else ""),
        "model_version": (str(versions[0].version) if versions else None),
        "model_name": (versions[0].name if versions else model_name),
        "pachyderm_address": tags.get("pachyderm.address", ""),
        "airflow": {"dag_id": tags.get("airflow.dag_id"), "run_id": tags.get("airflow.run_id")},
        "source": "mlflow run tags",
    }
    if client is not None:
        meta = commit_metadata(client, project, pipeline, commit_set)
        chain = provenance(client, project, pipeline, commit_set)
        out["commit_metadata"] = meta
        out["consistent"] = meta.get("mlflow.run_id") == run_id and chain == commits
        out["commits"] = chain
    return out


def _upstream_first(commits: dict[str, str]) -> dict[str, str]:
    order = {RAW_REPO: 0, "split_data": 1, "etl": 2}
    return dict(sorted(commits.items(), key=lambda kv: (order.get(kv[0], 5), kv[0])))


def lineage_for_commit(
    client: Client | None,
    mlflow_client: MlflowClient,
    *,
    project: str,
    repo: str,
    commit_id: str,
    train_repo: str = TRAIN_REPO,
    model_name: str | None = None,
) -> list[dict[str, Any]]:
    """Every recorded training that used ``repo@commit_id`` (the training commit itself or upstream).

    Reads the training commits' metadata (found through subvenance); for commits without
    metadata, or without pachd, falls back to searching MLflow runs by tag.
    """
    results: list[dict[str, Any]] = []
    missing: list[str] = []
    if client is not None:
        for train_commit in _train_commits(client, project, repo, commit_id, train_repo):
            meta = commit_metadata(client, project, train_repo, train_commit)
            if meta.get("mlflow.run_id"):
                rec = lineage_for_run(mlflow_client, meta["mlflow.run_id"], model_name=model_name)
                rec["commit_set"] = train_commit
                rec["commits"] = provenance(client, project, train_repo, train_commit)
                rec["commit_metadata"] = meta
                rec["model_version"] = meta.get("mlflow.model_version") or rec["model_version"]
                rec["model_uri"] = meta.get("mlflow.model_uri") or rec["model_uri"]
                rec["source"] = "pachyderm commit metadata"
                results.append(rec)
            else:
                missing.append(train_commit)
    if results and not missing:
        return results
    tag = "pachyderm.commit" if repo == train_repo else f"{PROVENANCE_PREFIX}{repo}"
    seen = {r["mlflow_run_id"] for r in results}
    for run_id in _search_runs_by_tag(mlflow_client, tag, commit_id):
        if run_id not in seen:
            rec = lineage_for_run(mlflow_client, run_id, model_name=model_name)
            rec["source"] = "mlflow tag search"
            results.append(rec)
    if not results:
        raise LineageError(f"no recorded MLflow run for {project}/{repo}@{commit_id}")
    return results


def _train_commits(client: Client, project: str, repo: str, commit_id: str, train_repo: str) -> list[str]:
    import grpc

    if repo == train_repo:
        return [commit_id]
    try:
        infos = client.pfs.walk_commit_subvenance(start=[commit_picker(project, repo, commit_id)])
        return _unique(
            i.commit.id
            for i in infos
            if i.commit.repo.name == train_repo and (i.commit.repo.type or "user") == "user"
        )
    except grpc.RpcError as err:
        if err.code() not in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND):
            raise
        log.warning("pachd cannot walk subvenance (%s); falling back to MLflow tag search", err.code().name)
        return []


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _search_runs_by_tag(mlflow_client: MlflowClient, tag: str, value: str) -> list[str]:
    from mlflow.entities import ViewType

    experiment_ids = [e.experiment_id for e in mlflow_client.search_experiments(view_type=ViewType.ALL)]
    if not experiment_ids:
        return []
    runs = mlflow_client.search_runs(
        experiment_ids, filter_string=f"tags.`{tag}` = '{value}'", run_view_type=ViewType.ALL
    )
    return [r.info.run_id for r in runs]


# -- presentation --------------------------------------------------------------------------------
def render_tree(record: dict[str, Any]) -> str:
    """Human-readable chain: raw CSV commit -> ... -> training commit -> MLflow run -> model version."""
    lines = []
    commits = list(record.get("commits", {}).items())
    for depth, (repo, cid) in enumerate(commits):
        lines.append(f"{'    ' * depth}{'└── ' if depth else ''}{repo}@{cid}")
    depth = len(commits)
    pad = "    " * depth
    lines.append(
        f"{pad}└── MLflow run {record.get('mlflow_run_id')} (experiment {record.get('mlflow_experiment_id')})"
    )
    if record.get("model_version"):
        lines.append(
            f"{pad}    └── model {record.get('model_name') or ''} version {record.get('model_version')}"
            f" ({record.get('model_uri')})"
        )
    af = record.get("airflow") or {}
    if af.get("dag_id"):
        lines.append(f"recorded by Airflow DAG {af.get('dag_id')}, run {af.get('run_id')}")
    if record.get("source"):
        lines.append(f"source: {record['source']}")
    return "\n".join(lines)
