"""The lineage contract shared by training jobs (``pachflow.worker``) and Airflow (``pachflow.lineage``).

One place for the names both sides write and read, the one tag builder and the one provenance
walker. No Airflow import: a pipeline worker with only pachyderm_sdk and mlflow imports this.

MLflow run tags and model-version tags:

- ``pachyderm.address``, ``pachyderm.project``, ``pachyderm.pipeline``, ``pachyderm.job``,
  ``pachyderm.commit`` (job id == commit-set id == output commit id);
- ``pachyderm.provenance.<repo>`` = commit id, for every upstream user repo of the training
  commit. A repo in another project than the pipeline's is written
  ``pachyderm.provenance.<project>/<repo>``;
- ``airflow.dag_id``, ``airflow.run_id`` when Airflow started the work.

Metadata on the training pipeline's output commit: ``mlflow.run_id``, ``mlflow.experiment_id``,
``mlflow.tracking_uri``, ``mlflow.model_uri``, ``mlflow.model_version``, ``mlflow.model_name``,
``airflow.dag_id``, ``airflow.run_id``.

The training job writes ``mlflow_run.json`` (run id, experiment id, tracking URI, model URI,
metrics) and an empty file named by the run id at the root of its output commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pachyderm_sdk import Client

log = logging.getLogger(__name__)

RUN_FILE = "mlflow_run.json"

TAG_ADDRESS = "pachyderm.address"
TAG_PROJECT = "pachyderm.project"
TAG_PIPELINE = "pachyderm.pipeline"
TAG_JOB = "pachyderm.job"
TAG_COMMIT = "pachyderm.commit"
PROVENANCE_PREFIX = "pachyderm.provenance."
TAG_DAG_ID = "airflow.dag_id"
TAG_AIRFLOW_RUN_ID = "airflow.run_id"

META_RUN_ID = "mlflow.run_id"
META_EXPERIMENT_ID = "mlflow.experiment_id"
META_TRACKING_URI = "mlflow.tracking_uri"
META_MODEL_URI = "mlflow.model_uri"
META_MODEL_VERSION = "mlflow.model_version"
META_MODEL_NAME = "mlflow.model_name"
META_DAG_ID = "airflow.dag_id"
META_AIRFLOW_RUN_ID = "airflow.run_id"


# -- repo keys -----------------------------------------------------------------------------------
def repo_key(project: str, repo: str, home_project: str) -> str:
    """``repo`` when it lives in ``home_project`` (the pipeline's), else ``project/repo``."""
    return repo if project == home_project else f"{project}/{repo}"


def split_repo_key(key: str, home_project: str) -> tuple[str, str]:
    """Inverse of :func:`repo_key`: (project, repo)."""
    project, _, repo = key.rpartition("/")
    return (project or home_project), repo


def provenance_from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """``{repo key: commit}`` of the ``pachyderm.provenance.*`` tags."""
    return {k[len(PROVENANCE_PREFIX) :]: v for k, v in tags.items() if k.startswith(PROVENANCE_PREFIX)}


def lineage_tags(
    *,
    address: str = "",
    project: str = "",
    pipeline: str = "",
    job: str = "",
    commit: str = "",
    provenance: Mapping[str, str] | None = None,
    dag_id: str = "",
    airflow_run_id: str = "",
) -> dict[str, str]:
    """The MLflow tags of the contract; ``provenance`` is ``{repo key: commit}``. Empty values are left out.

    The pipeline's own repo is not a provenance entry (it is ``pachyderm.commit``).
    """
    tags = {
        TAG_ADDRESS: address,
        TAG_PROJECT: project,
        TAG_PIPELINE: pipeline,
        TAG_JOB: job,
        TAG_COMMIT: commit,
    }
    for key, cid in (provenance or {}).items():
        if key != pipeline:
            tags[f"{PROVENANCE_PREFIX}{key}"] = cid
    tags[TAG_DAG_ID] = dag_id
    tags[TAG_AIRFLOW_RUN_ID] = airflow_run_id
    return {k: v for k, v in tags.items() if v}


# -- provenance graph ----------------------------------------------------------------------------
def node_id(project: str, repo: str, commit: str) -> str:
    """Graph id of a commit: ``<project>/<repo>@<commit>``."""
    return f"{project}/{repo}@{commit}"


@dataclass(frozen=True)
class CommitNode:
    """One user-repo commit of a provenance graph and the ids of its direct upstream commits."""

    project: str
    repo: str
    commit: str
    upstream: tuple[str, ...] = ()
    pipeline: bool = False

    @property
    def id(self) -> str:
        return node_id(self.project, self.repo, self.commit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": "commit",
            "project": self.project,
            "repo": self.repo,
            "commit": self.commit,
            "pipeline": self.pipeline,
        }


@dataclass(frozen=True)
class ProvenanceGraph:
    """The commits a commit was computed from, as a graph: siblings (join/cross/union/group inputs)
    are separate upstream branches of the commit that read them."""

    root: str
    nodes: dict[str, CommitNode]

    def upstream_first(self) -> list[CommitNode]:
        """Every node, each after all its upstream commits (ties broken by project, repo, commit)."""
        pending = {nid: {u for u in n.upstream if u in self.nodes} for nid, n in self.nodes.items()}
        order: list[CommitNode] = []
        while pending:
            ready = sorted((nid for nid, deps in pending.items() if not deps), key=self._sort_key)
            if not ready:  # a cycle cannot happen in Pachyderm; do not loop forever if it did
                ready = sorted(pending, key=self._sort_key)
            for nid in ready:
                pending.pop(nid)
                order.append(self.nodes[nid])
            for deps in pending.values():
                deps.difference_update(ready)
        return order

    def _sort_key(self, nid: str) -> tuple[str, str, str]:
        n = self.nodes[nid]
        return n.project, n.repo, n.commit

    def sources(self) -> list[CommitNode]:
        """The commits with no upstream: the input repos users push to."""
        return [n for n in self.upstream_first() if not n.upstream]

    def commits(self, home_project: str) -> dict[str, str]:
        """``{repo key: commit}``, upstream first; a repo met twice keeps the commit nearest the root."""
        nearest: dict[str, str] = {}
        for nid in self._breadth_first():
            n = self.nodes[nid]
            nearest.setdefault(repo_key(n.project, n.repo, home_project), n.commit)
        ordered: dict[str, str] = {}
        for n in self.upstream_first():
            key = repo_key(n.project, n.repo, home_project)
            if nearest.get(key) == n.commit:
                ordered[key] = n.commit
        return ordered

    def _breadth_first(self) -> list[str]:
        seen, queue = [self.root], [self.root]
        while queue:
            for up in self.nodes[queue.pop(0)].upstream:
                if up in self.nodes and up not in seen:
                    seen.append(up)
                    queue.append(up)
        return seen

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """``{"nodes": [...], "edges": [{"from": upstream id, "to": downstream id}]}``, upstream first."""
        ordered = self.upstream_first()
        return {
            "nodes": [n.to_dict() for n in ordered],
            "edges": [{"from": u, "to": n.id} for n in ordered for u in n.upstream],
        }


def _is_user(commit: Any) -> bool:
    return (commit.repo.type or "user") == "user"


def _key(commit: Any) -> str:
    return node_id(commit.repo.project.name or "default", commit.repo.name, commit.id)


def commit_picker(project: str, repo: str, commit_id: str) -> Any:
    """A CommitPicker for ``project/repo@commit_id`` (commit id = global id)."""
    from pachyderm_sdk.api import pfs

    return pfs.CommitPicker(
        id=pfs.CommitPickerCommitByGlobalId(
            repo=pfs.RepoPicker(
                name=pfs.RepoPickerRepoName(project=pfs.ProjectPicker(name=project), name=repo, type="user")
            ),
            id=commit_id,
        )
    )


def pfs_commit(project: str, repo: str, commit_id: str) -> Any:
    from pachyderm_sdk.api import pfs

    return pfs.Commit(repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)), id=commit_id)


def walk_provenance(client: Client, project: str, repo: str, commit_id: str) -> ProvenanceGraph:
    """The provenance graph of ``project/repo@commit_id`` (user repos only).

    One WalkCommitProvenance call gives every upstream CommitInfo with its direct provenance;
    a server without it is walked breadth first over ``direct_provenance`` (one InspectCommit
    per commit).
    """
    import grpc

    start = client.pfs.inspect_commit(commit=pfs_commit(project, repo, commit_id))
    infos: dict[str, Any] = {_key(start.commit): start}
    try:
        for info in client.pfs.walk_commit_provenance(start=[commit_picker(project, repo, commit_id)]):
            infos.setdefault(_key(info.commit), info)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        log.info("pachd has no WalkCommitProvenance; walking direct provenance")
    nodes: dict[str, CommitNode] = {}
    queue = [_key(start.commit)]
    while queue:
        nid = queue.pop(0)
        if nid in nodes:
            continue
        info = infos[nid]
        upstream = []
        for parent in info.direct_provenance:
            if not _is_user(parent):
                continue
            pid = _key(parent)
            if pid not in infos:
                infos[pid] = client.pfs.inspect_commit(commit=parent)
            upstream.append(pid)
            queue.append(pid)
        c = info.commit
        nodes[nid] = CommitNode(
            project=c.repo.project.name or "default",
            repo=c.repo.name,
            commit=c.id,
            upstream=tuple(dict.fromkeys(upstream)),
            pipeline=bool(info.direct_provenance),
        )
    return ProvenanceGraph(root=_key(start.commit), nodes=nodes)


def walk_subvenance(client: Client, project: str, repo: str, commit_id: str) -> list[Any]:
    """CommitInfo of ``project/repo@commit_id`` and of every user commit downstream of it, the start first.

    WalkCommitSubvenance when pachd has it, else breadth first over ``direct_subvenance``.
    """
    import grpc

    start = client.pfs.inspect_commit(commit=pfs_commit(project, repo, commit_id))
    found = {_key(start.commit): start}
    try:
        for info in client.pfs.walk_commit_subvenance(start=[commit_picker(project, repo, commit_id)]):
            if _is_user(info.commit):
                found.setdefault(_key(info.commit), info)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        queue = [start]
        while queue:
            for child in queue.pop(0).direct_subvenance:
                if _is_user(child) and _key(child) not in found:
                    found[_key(child)] = client.pfs.inspect_commit(commit=child)
                    queue.append(found[_key(child)])
    return list(found.values())
