"""Helpers for the reliability tests: the project's three pipeline specs applied to a pachd-lite project."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPECS = ("split_data", "etl", "ml_train")


def spec_for(name: str, project: str, edit: Callable[[dict[str, Any]], None] | None = None) -> str:
    """pachyderm_specs/<name>.json moved into ``project`` (pipeline and input), optionally edited."""
    spec = json.loads((ROOT / "pachyderm_specs" / f"{name}.json").read_text())
    spec["pipeline"]["project"] = {"name": project}
    spec["input"]["pfs"]["project"] = project
    if edit is not None:
        edit(spec)
    return json.dumps(spec)


@pytest.fixture
def pipeline_project(pachd_server):
    """``make(edits)``: a fresh project on the shared pachd-lite with raw_data and the three pipelines.

    ``edits`` maps a pipeline name to a function that edits its spec dict before creation.
    Returns (client, project).
    """
    from pachyderm_sdk.api import pfs

    from tests.fixtures.pachd import unique_name

    def make(edits: dict[str, Callable[[dict[str, Any]], None]] | None = None, specs=SPECS):
        client = pachd_server.client()
        project = unique_name("rel")
        client.pfs.create_project(project=pfs.Project(name=project))
        client.pfs.create_repo(repo=pfs.Repo.from_uri(f"{project}/raw_data"))
        for name in specs:
            client.pps.create_pipeline_v2(
                create_pipeline_request_json=spec_for(name, project, (edits or {}).get(name))
            )
        return client, project

    return make
