"""An MLflow dataset source for data held in a Pachyderm commit.

URI form: ``pachyderm://<address>/<project>/<repo>@<commit>[/<path>]``, e.g.
``pachyderm://localhost:30650/default/etl@4f0c...``. Registered through the
``mlflow.dataset_source`` entry point (see pyproject.toml), so any process with pachflow
installed can read back runs' dataset inputs. This module must not import Airflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.data.dataset_source import DatasetSource

SCHEME = "pachyderm://"
_URI_RE = re.compile(
    r"^pachyderm://(?P<address>[^/]+)/(?P<project>[^/]+)/(?P<repo>[^/@]+)@(?P<commit>[^/]+)(?P<path>/.*)?$"
)


@dataclass(frozen=True)
class PachydermRef:
    """The parts of a ``pachyderm://`` URI."""

    address: str
    project: str
    repo: str
    commit: str
    path: str = "/"


def parse_uri(uri: str) -> PachydermRef:
    """Split a ``pachyderm://address/project/repo@commit[/path]`` URI; ValueError names the URI."""
    match = _URI_RE.match(uri)
    if not match:
        raise ValueError(
            f"not a Pachyderm dataset URI (want pachyderm://<address>/<project>/<repo>@<commit>): {uri!r}"
        )
    return PachydermRef(
        address=match["address"],
        project=match["project"],
        repo=match["repo"],
        commit=match["commit"],
        path=match["path"] or "/",
    )


class PachydermDatasetSource(DatasetSource):
    """A dataset that is the content of one Pachyderm commit (optionally one path in it)."""

    def __init__(self, address: str, project: str, repo: str, commit: str, path: str = "/") -> None:
        self.address = address
        self.project = project or "default"
        self.repo = repo
        self.commit = commit
        self.path = path if path.startswith("/") else f"/{path}"

    @property
    def uri(self) -> str:
        suffix = "" if self.path == "/" else self.path
        return f"{SCHEME}{self.address}/{self.project}/{self.repo}@{self.commit}{suffix}"

    @staticmethod
    def _get_source_type() -> str:
        return "pachyderm"

    def load(self, dst_path: str | None = None) -> str:
        """Download the commit's files (under ``path``) to ``dst_path`` (a temp dir if None); return it."""
        import tempfile

        from pachyderm_sdk import Client
        from pachyderm_sdk.api import pfs

        target = Path(dst_path or tempfile.mkdtemp(prefix=f"pachyderm-{self.repo}-"))
        client = Client.from_pachd_address(self.address)
        commit = pfs.Commit(
            repo=pfs.Repo(name=self.repo, type="user", project=pfs.Project(name=self.project)), id=self.commit
        )
        for info in client.pfs.walk_file(file=pfs.File(commit=commit, path=self.path)):
            if info.file_type != pfs.FileType.FILE:
                continue
            local = target / info.file.path.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            with client.pfs.pfs_file(file=info.file) as remote, open(local, "wb") as out:
                while chunk := remote.read(1 << 20):
                    out.write(chunk)
        return str(target)

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return isinstance(raw_source, str) and _URI_RE.match(raw_source) is not None

    @classmethod
    def _resolve(cls, raw_source: Any) -> PachydermDatasetSource:
        ref = parse_uri(str(raw_source))
        return cls(ref.address, ref.project, ref.repo, ref.commit, ref.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "address": self.address,
            "project": self.project,
            "repo": self.repo,
            "commit": self.commit,
            "path": self.path,
        }

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> PachydermDatasetSource:
        if "uri" in source_dict and not {"repo", "commit"} <= source_dict.keys():
            return cls._resolve(source_dict["uri"])
        return cls(
            address=source_dict["address"],
            project=source_dict.get("project", "default"),
            repo=source_dict["repo"],
            commit=source_dict["commit"],
            path=source_dict.get("path", "/"),
        )
