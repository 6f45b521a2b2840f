"""OpenLineage datasets for pachflow tasks (the openlineage provider is optional: imports are lazy)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def namespace(host: str, port: int) -> str:
    """OpenLineage namespace of a pachd instance: ``pachyderm://host:port``."""
    return f"pachyderm://{host}:{port}"


def dataset_name(project: str, repo: str, ref: str) -> str:
    """OpenLineage dataset name of a commit or branch: ``project/repo@commit_or_branch``."""
    return f"{project}/{repo}@{ref}"


def operator_lineage(
    ns: str,
    *,
    inputs: Iterable[str] = (),
    outputs: Iterable[str] = (),
    run_facets: dict[str, Any] | None = None,
) -> Any:
    """Build an ``OperatorLineage`` from dataset names (``project/repo@commit_or_branch``); None without the provider."""
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    return OperatorLineage(
        inputs=[Dataset(namespace=ns, name=name) for name in inputs],
        outputs=[Dataset(namespace=ns, name=name) for name in outputs],
        run_facets=run_facets or {},
        job_facets={},
    )
