"""Airflow Assets for Pachyderm branches: ``pachyderm://<project>/<repo>@<branch>``.

The URI names the project, repo and branch, not the pachd host, so the same DAG file keeps
the same Asset identity on every deployment; the commit id travels in the event's extra.
"""

from __future__ import annotations

from airflow.sdk import Asset


def pachyderm_asset(repo: str, branch: str = "master", project: str = "default") -> Asset:
    """The Asset standing for ``project/repo@branch``."""
    return Asset(
        name=f"pachyderm/{project}/{repo}@{branch}",
        uri=f"pachyderm://{project}/{repo}@{branch}",
        group="pachyderm",
    )
