"""MLflow run <-> Pachyderm commit lineage: record it, and look it up in both directions.

The names written and read are those of the lineage contract (:mod:`pachflow.contract`). Both
lookups return the same record::

    {commit_set, commits: {repo: id} (upstream first), sources: [repo, ...], project, train_repo,
     mlflow_run_id, mlflow_experiment_id, model_uri, model_version, model_name, tracking_uri,
     pachyderm_address, airflow: {dag_id, run_id}, source,
     graph: {nodes: [...], edges: [{from, to}, ...]}}

``commits`` and ``sources`` name repos by :func:`pachflow.contract.repo_key` (``repo`` in the
record's project, ``project/repo`` elsewhere). ``graph`` holds commit nodes
(``{"id": "<project>/<repo>@<commit>", "kind": "commit", project, repo, commit, pipeline}``),
the MLflow run (``kind: "mlflow_run"``) and its model versions (``kind: "model_version"``); an
edge goes from upstream to downstream, so the inputs of a join/cross/union are separate branches.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pachflow.contract import (
    META_AIRFLOW_RUN_ID,
    META_DAG_ID,
    META_EXPERIMENT_ID,
    META_MODEL_NAME,
    META_MODEL_URI,
    META_MODEL_VERSION,
    META_RUN_ID,
    META_TRACKING_URI,
    PROVENANCE_PREFIX,
    RUN_FILE,
    TAG_ADDRESS,
    TAG_AIRFLOW_RUN_ID,
    TAG_COMMIT,
    TAG_DAG_ID,
    TAG_PIPELINE,
    TAG_PROJECT,
    ProvenanceGraph,
    commit_picker,
    lineage_tags,
    node_id,
    pfs_commit,
    provenance_from_tags,
    repo_key,
    walk_provenance,
    walk_subvenance,
)
from pachflow.exceptions import ConfigurationError, LineageError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pachyderm_sdk import Client

__all__ = [
    "LineageError",
    "TrainRun",
    "commit_metadata",
    "commit_picker",
    "lineage_for_commit",
    "lineage_for_run",
    "provenance",
    "read_train_run",
    "record_lineage",
    "render_tree",
    "write_commit_metadata",
]

log = logging.getLogger(__name__)

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
def read_train_run(
    client: Client, project: str, repo: str, commit_id: str, run_file: str = RUN_FILE
) -> TrainRun:
    """Read the MLflow run the training job wrote into its output commit.

    ``mlflow_run.json`` first; failing that, an empty file named by a 32-hex run id.
    """
    from pachyderm_sdk.api import pfs

    commit = pfs_commit(project, repo, commit_id)
    path = "/" + run_file.lstrip("/")
    file = pfs.File(commit=commit, path=path)
    if client.pfs.path_exists(file):
        raw = b"".join(chunk.value for chunk in client.pfs.get_file(file=file))
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            raise LineageError(
                f"{project}/{repo}@{commit_id}:{path}: line {err.lineno}: invalid JSON"
            ) from err
        run_id = data.get("run_id") or data.get("mlflow_run_id")
        if not run_id:
            raise LineageError(f"{project}/{repo}@{commit_id}:{path}: field run_id is missing")
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
    raise LineageError(f"{project}/{repo}@{commit_id} holds no {path} and no file named by an MLflow run id")


def provenance(client: Client, project: str, repo: str, commit_id: str) -> dict[str, str]:
    """``{repo key: commit}`` of ``repo@commit_id`` and everything upstream of it, upstream first."""
    return walk_provenance(client, project, repo, commit_id).commits(project)


def commit_metadata(client: Client, project: str, repo: str, commit_id: str) -> dict[str, str]:
    return dict(client.pfs.inspect_commit(commit=pfs_commit(project, repo, commit_id)).metadata or {})


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


def _require(**values: Any) -> None:
    for name, value in values.items():
        if value is None or not str(value).strip():
            raise ConfigurationError(f"{name} is required and was empty")


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
    train_repo: str,
    model_name: str,
    alias: str | None = None,
) -> dict[str, Any]:
    """Write the lineage of ``project/train_repo@commit_set`` everywhere and return the lineage record.

    Run tags and model-version tags, a registered version of ``model_name`` (one per run),
    ``alias`` on it (None: no alias), metadata on the training commit. Safe to run again for
    the same commit: tags and metadata are upserts and the version is looked up by run id.
    """
    from mlflow.entities import RunTag

    _require(project=project, commit_set=commit_set, train_repo=train_repo, model_name=model_name)
    run = read_train_run(client, project, train_repo, commit_set)
    graph = walk_provenance(client, project, train_repo, commit_set)
    mlflow_run = mlflow_client.get_run(run.run_id)
    experiment_id = run.experiment_id or mlflow_run.info.experiment_id
    # Normally the run was trained by this commit set's job. When that job skipped its datum (e.g.
    # a forced, identical push after a reprocessing update), it carried an earlier job's model over:
    # the run's tags then describe the commit set it was really trained in, and both training
    # commits point at the run in their metadata.
    trained_in = mlflow_run.data.tags.get(TAG_COMMIT) or commit_set
    trained_graph = graph
    if trained_in != commit_set:
        log.info(
            "Run %s was trained in commit set %s; %s reuses its model", run.run_id, trained_in, commit_set
        )
        trained_graph = walk_provenance(client, project, train_repo, trained_in)
    tags = lineage_tags(
        address=address,
        project=project,
        pipeline=train_repo,
        job=trained_in,
        commit=trained_in,
        provenance=trained_graph.commits(project),
        dag_id=dag_id,
        airflow_run_id=airflow_run_id,
    )
    mlflow_client.log_batch(run.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    version = register_version(mlflow_client, tracking_uri, model_name=model_name, run=run, tags=tags)
    if alias:
        mlflow_client.set_registered_model_alias(model_name, alias, version)
    model_uri = run.model_uri or f"models:/{model_name}/{version}"
    metadata = {
        META_RUN_ID: run.run_id,
        META_EXPERIMENT_ID: experiment_id,
        META_TRACKING_URI: tracking_uri,
        META_MODEL_URI: model_uri,
        META_MODEL_VERSION: version,
        META_MODEL_NAME: model_name,
        META_DAG_ID: dag_id,
        META_AIRFLOW_RUN_ID: airflow_run_id,
    }
    for commit in dict.fromkeys([trained_in, commit_set]):
        write_commit_metadata(client, project, train_repo, commit, metadata)
    record = _assemble(
        project=project,
        pipeline=train_repo,
        commit_set=commit_set,
        graph=graph,
        tag_commits={},
        run_id=run.run_id,
        experiment_id=experiment_id,
        versions=_model_versions(mlflow_client, run.run_id, model_name),
        primary=(model_name, version, model_uri),
        tracking_uri=tracking_uri,
        address=address,
        airflow={"dag_id": dag_id, "run_id": airflow_run_id},
        source="recorded",
    )
    # Rows an upstream pipeline rejected (see pachflow.rejects): into the record and the run.
    from pachflow.rejects import attach_rejected_rows

    attach_rejected_rows(client, mlflow_client, record)
    return record


# -- lookup --------------------------------------------------------------------------------------
def lineage_for_run(
    mlflow_client: MlflowClient,
    run_id: str,
    *,
    client: Client | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Lineage of an MLflow run, in the project of its own ``pachyderm.project`` tag.

    Without pachd the commits come from the run's tags (no edges between them). With pachd the
    graph is re-read from provenance and compared with the tags and the training commit's
    metadata (``consistent``).
    """
    return _lineage_of_run(mlflow_client, mlflow_client.get_run(run_id), client=client, model_name=model_name)


def _lineage_of_run(
    mlflow_client: MlflowClient,
    run: Any,
    *,
    client: Client | None,
    model_name: str | None,
    project_hint: str | None = None,
) -> dict[str, Any]:
    run_id = run.info.run_id
    tags = run.data.tags
    commit_set, pipeline = tags.get(TAG_COMMIT), tags.get(TAG_PIPELINE)
    project = tags.get(TAG_PROJECT) or project_hint
    for tag, value in ((TAG_COMMIT, commit_set), (TAG_PIPELINE, pipeline), (TAG_PROJECT, project)):
        if not value:
            raise LineageError(f"MLflow run {run_id} has no {tag} tag: its lineage was never recorded")
    tag_commits = provenance_from_tags(tags)
    meta = commit_metadata(client, project, pipeline, commit_set) if client is not None else None
    rec = _record_from(
        mlflow_client,
        run,
        client=client,
        project=project,
        pipeline=pipeline,
        commit_set=commit_set,
        meta=meta,
        model_name=model_name,
        source="mlflow run tags",
    )
    if client is not None:
        rec["consistent"] = meta.get(META_RUN_ID) == run_id and rec["commits"] == {
            **tag_commits,
            pipeline: commit_set,
        }
    return rec


def _record_from(
    mlflow_client: MlflowClient,
    run: Any,
    *,
    client: Client | None,
    project: str,
    pipeline: str,
    commit_set: str,
    meta: dict[str, str] | None,
    model_name: str | None,
    source: str,
) -> dict[str, Any]:
    """The lineage record of ``run`` seen from the training commit ``project/pipeline@commit_set``."""
    run_id = run.info.run_id
    tags = run.data.tags
    versions = _model_versions(mlflow_client, run_id, model_name)
    meta = meta or {}
    primary = (model_name or "", "", "")
    if meta.get(META_MODEL_VERSION) and (
        not model_name or meta.get(META_MODEL_NAME, model_name) == model_name
    ):
        primary = (meta.get(META_MODEL_NAME) or "", meta[META_MODEL_VERSION], meta.get(META_MODEL_URI, ""))
    elif versions:
        primary = (versions[0].name, str(versions[0].version), versions[0].source)
    rec = _assemble(
        project=project,
        pipeline=pipeline,
        commit_set=commit_set,
        graph=walk_provenance(client, project, pipeline, commit_set) if client is not None else None,
        tag_commits=provenance_from_tags(tags),
        run_id=run_id,
        experiment_id=run.info.experiment_id,
        versions=versions,
        primary=primary,
        tracking_uri=meta.get(META_TRACKING_URI, ""),
        address=tags.get(TAG_ADDRESS, ""),
        airflow={"dag_id": tags.get(TAG_DAG_ID), "run_id": tags.get(TAG_AIRFLOW_RUN_ID)},
        source=source,
    )
    if client is not None:
        rec["commit_metadata"] = meta
    return rec


def lineage_for_commit(
    client: Client | None,
    mlflow_client: MlflowClient,
    *,
    project: str,
    repo: str,
    commit_id: str,
    model_name: str | None = None,
    train_repo: str | None = None,
) -> list[dict[str, Any]]:
    """Every recorded training that used ``project/repo@commit_id`` (the training commit itself or
    anything upstream of it), whatever the training repo is called.

    With pachd: the commits downstream of it (subvenance) whose metadata names an MLflow run.
    When none does, or without pachd: MLflow runs tagged with the commit (``pachyderm.commit``
    or ``pachyderm.provenance.<repo>``). ``train_repo`` only filters the answer.
    """
    results: list[dict[str, Any]] = []
    if client is not None:
        for info in walk_subvenance(client, project, repo, commit_id):
            meta = dict(info.metadata or {})
            c = info.commit
            if not meta.get(META_RUN_ID) or (train_repo and c.repo.name != train_repo):
                continue
            run = mlflow_client.get_run(meta[META_RUN_ID])
            results.append(
                _record_from(
                    mlflow_client,
                    run,
                    client=client,
                    project=c.repo.project.name or "default",
                    pipeline=c.repo.name,
                    commit_set=c.id,
                    meta=meta,
                    model_name=model_name,
                    source="pachyderm commit metadata",
                )
            )
    if results:
        return results
    for run in _runs_tagged_with(mlflow_client, project, repo, commit_id):
        if train_repo and run.data.tags.get(TAG_PIPELINE) != train_repo:
            continue
        rec = _lineage_of_run(mlflow_client, run, client=client, model_name=model_name, project_hint=project)
        rec["source"] = "mlflow tag search"
        results.append(rec)
    if not results:
        raise LineageError(f"no recorded MLflow run for {project}/{repo}@{commit_id}")
    return results


def _runs_tagged_with(mlflow_client: MlflowClient, project: str, repo: str, commit_id: str) -> list[Any]:
    """Runs whose tags name ``project/repo@commit_id`` as their training commit or an upstream one."""
    from mlflow.entities import ViewType

    experiment_ids = [e.experiment_id for e in mlflow_client.search_experiments(view_type=ViewType.ALL)]
    if not experiment_ids:
        return []

    def search(tag: str) -> list[Any]:
        return mlflow_client.search_runs(
            experiment_ids, filter_string=f"tags.`{tag}` = '{commit_id}'", run_view_type=ViewType.ALL
        )

    found: dict[str, Any] = {}
    for run in search(TAG_COMMIT):
        tags = run.data.tags
        if tags.get(TAG_PIPELINE) == repo and tags.get(TAG_PROJECT, project) == project:
            found.setdefault(run.info.run_id, run)
    # The provenance key is relative to the run's project: ``repo`` there, ``project/repo`` elsewhere.
    for run in search(f"{PROVENANCE_PREFIX}{repo}"):
        if run.data.tags.get(TAG_PROJECT, project) == project:
            found.setdefault(run.info.run_id, run)
    for run in search(f"{PROVENANCE_PREFIX}{project}/{repo}"):
        found.setdefault(run.info.run_id, run)
    return list(found.values())


def _model_versions(mlflow_client: MlflowClient, run_id: str, model_name: str | None) -> list[Any]:
    """Registered versions of the run (of ``model_name`` only, if given), lowest first, with aliases."""
    found = [
        mv
        for mv in mlflow_client.search_model_versions(f"run_id = '{run_id}'")
        if not model_name or mv.name == model_name
    ]
    found.sort(key=lambda mv: (mv.name, int(mv.version)))
    return [mlflow_client.get_model_version(mv.name, str(mv.version)) for mv in found]


def _assemble(
    *,
    project: str,
    pipeline: str,
    commit_set: str,
    graph: ProvenanceGraph | None,
    tag_commits: dict[str, str],
    run_id: str,
    experiment_id: str,
    versions: list[Any],
    primary: tuple[str, str, str],
    tracking_uri: str,
    address: str,
    airflow: dict[str, Any],
    source: str,
) -> dict[str, Any]:
    train_id = node_id(project, pipeline, commit_set)
    if graph is not None:
        commits = graph.commits(project)
        sources = [repo_key(n.project, n.repo, project) for n in graph.sources()]
        g = graph.to_dict()
    else:  # MLflow tags alone: the commits, but not how they connect
        commits = {**dict(sorted(tag_commits.items())), pipeline: commit_set}
        sources = []
        g = {"nodes": [], "edges": []}
        for key, cid in commits.items():
            p, _, r = key.rpartition("/")
            g["nodes"].append(
                {
                    "id": node_id(p or project, r, cid),
                    "kind": "commit",
                    "project": p or project,
                    "repo": r,
                    "commit": cid,
                    "pipeline": key == pipeline,
                }
            )
    run_node = f"mlflow_run:{run_id}"
    g["nodes"].append(
        {"id": run_node, "kind": "mlflow_run", "run_id": run_id, "experiment_id": experiment_id}
    )
    g["edges"].append({"from": train_id, "to": run_node})
    for mv in versions:
        mv_id = f"model_version:{mv.name}/{mv.version}"
        g["nodes"].append(
            {
                "id": mv_id,
                "kind": "model_version",
                "name": mv.name,
                "version": str(mv.version),
                "aliases": sorted(getattr(mv, "aliases", None) or []),
                "source": mv.source,
            }
        )
        g["edges"].append({"from": run_node, "to": mv_id})
    name, version, uri = primary
    return {
        "commit_set": commit_set,
        "commits": commits,
        "sources": sources,
        "project": project,
        "train_repo": pipeline,
        "mlflow_run_id": run_id,
        "mlflow_experiment_id": experiment_id,
        "model_uri": uri,
        "model_version": version or None,
        "model_name": name or None,
        "tracking_uri": tracking_uri,
        "pachyderm_address": address,
        "airflow": airflow,
        "source": source,
        "graph": g,
    }


# -- presentation --------------------------------------------------------------------------------
def render_tree(record: dict[str, Any]) -> str:
    """Text view of a lineage record: the MLflow run, its model versions, then the training commit
    and its inputs as a tree (a join/cross/union input is a branch), upstream-first among siblings."""
    graph = record.get("graph") or {"nodes": [], "edges": []}
    nodes = {n["id"]: n for n in graph["nodes"]}
    order = {nid: i for i, nid in enumerate(nodes)}
    upstream: dict[str, list[str]] = {}
    for e in graph["edges"]:
        upstream.setdefault(e["to"], []).append(e["from"])
    project = record.get("project") or ""

    def label(nid: str) -> str:
        n = nodes.get(nid)
        if not n or n.get("kind") != "commit":
            return nid
        key = n["repo"] if n["project"] == project else f"{n['project']}/{n['repo']}"
        return f"{key}@{n['commit']}"

    lines = [f"MLflow run {record.get('mlflow_run_id')} (experiment {record.get('mlflow_experiment_id')})"]
    versions = [n for n in graph["nodes"] if n.get("kind") == "model_version"]
    train = node_id(project, record.get("train_repo") or "", record.get("commit_set") or "")
    for n in versions:
        aliases = f" [{', '.join(n['aliases'])}]" if n.get("aliases") else ""
        lines.append(f"├── model {n['name']} version {n['version']}{aliases} ({n.get('source')})")
    if not versions and record.get("model_version"):
        lines.append(
            f"├── model {record.get('model_name') or ''} version {record['model_version']}"
            f" ({record.get('model_uri')})"
        )
    lines.append(f"└── trained on {label(train)}")
    drawn: set[str] = {train}

    def draw(nid: str, pad: str) -> None:
        children = sorted((u for u in upstream.get(nid, []) if u in nodes), key=lambda u: order[u])
        for i, child in enumerate(children):
            last = i == len(children) - 1
            seen = child in drawn
            lines.append(f"{pad}{'└── ' if last else '├── '}{label(child)}{' (see above)' if seen else ''}")
            if not seen:
                drawn.add(child)
                draw(child, pad + ("    " if last else "│   "))

    draw(train, "    ")
    if not upstream.get(train):
        others = [
            f"{k}@{v}" for k, v in (record.get("commits") or {}).items() if k != record.get("train_repo")
        ]
        if others:
            lines.append(f"    (from MLflow tags, without pachd: {', '.join(others)})")
    if record.get("sources"):
        commits = record.get("commits") or {}
        lines.append("sources: " + ", ".join(f"{s}@{commits.get(s, '?')}" for s in record["sources"]))
    af = record.get("airflow") or {}
    if af.get("dag_id"):
        lines.append(f"recorded by Airflow DAG {af.get('dag_id')}, run {af.get('run_id')}")
    if record.get("source"):
        lines.append(f"source: {record['source']}")
    return "\n".join(lines)
