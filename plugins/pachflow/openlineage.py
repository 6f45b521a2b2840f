"""OpenLineage datasets and facets for pachflow tasks (the openlineage provider is optional: imports are lazy).

A Pachyderm branch is one dataset: namespace ``pachyderm://host:port`` (the pachd instance), name
``project/repo@branch``, so ``pachyderm://`` + name is the URI of the branch's Airflow Asset. The
commit a task read or wrote is the dataset's version (the standard ``version`` facet), as an
Asset event carries it in its extra.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

MLFLOW_FACET = "pachflow_mlflow"


def namespace(host: str, port: int) -> str:
    """OpenLineage namespace of a pachd instance: ``pachyderm://host:port``."""
    return f"pachyderm://{host}:{port}"


def dataset_name(project: str, repo: str, ref: str) -> str:
    """OpenLineage dataset name of a branch (or commit): ``project/repo@branch``."""
    return f"{project}/{repo}@{ref}"


@dataclass(frozen=True)
class BranchCommit:
    """A commit on a branch: the dataset ``project/repo@branch`` at version ``commit``."""

    project: str
    repo: str
    branch: str
    commit: str

    @property
    def name(self) -> str:
        return dataset_name(self.project, self.repo, self.branch)


def _dataset(ns: str, item: str | BranchCommit) -> Any:
    from airflow.providers.common.compat.openlineage.facet import Dataset

    if isinstance(item, str):
        return Dataset(namespace=ns, name=item)
    from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet

    return Dataset(
        namespace=ns,
        name=item.name,
        facets={"version": DatasetVersionDatasetFacet(datasetVersion=item.commit)},
    )


@cache
def _mlflow_facet_class() -> type:
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class PachflowMlflowRunFacet(RunFacet):
        """The MLflow run a training commit produced and the model version registered from it."""

        tracking_uri: str
        experiment_id: str
        run_id: str
        model_name: str
        model_version: str
        model_uri: str

        @staticmethod
        def _get_schema() -> str:
            return "urn:pachflow:openlineage:facet:PachflowMlflowRunFacet:1"

    return PachflowMlflowRunFacet


def mlflow_run_facet(record: dict[str, Any]) -> dict[str, Any]:
    """``{"pachflow_mlflow": facet}`` for a lineage record (MLflow run, model name and version)."""
    facet = _mlflow_facet_class()(
        tracking_uri=str(record.get("tracking_uri") or ""),
        experiment_id=str(record.get("mlflow_experiment_id") or ""),
        run_id=str(record["mlflow_run_id"]),
        model_name=str(record.get("model_name") or ""),
        model_version=str(record.get("model_version") or ""),
        model_uri=str(record.get("model_uri") or ""),
    )
    return {MLFLOW_FACET: facet}


def operator_lineage(
    ns: str,
    *,
    inputs: Iterable[str | BranchCommit] = (),
    outputs: Iterable[str | BranchCommit] = (),
    run_facets: dict[str, Any] | None = None,
) -> Any:
    """Build an ``OperatorLineage`` from datasets (a :class:`BranchCommit` or a dataset name); None
    without the provider."""
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    return OperatorLineage(
        inputs=[_dataset(ns, item) for item in inputs],
        outputs=[_dataset(ns, item) for item in outputs],
        run_facets=run_facets or {},
        job_facets={},
    )
