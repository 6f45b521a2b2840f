"""What a user can ask the lineage views for, validated before anything is looked up.

A malformed value is a :class:`BadQuery` whose message names the parameter (the app answers 400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pachflow.exceptions import PachflowError

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
COMMIT_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# Pachyderm project/repo names: letters, digits, underscore, dash.
PFS_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
VERSION_RE = re.compile(r"^[1-9][0-9]{0,9}$")
ALIAS_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
MODEL_NAME_RE = re.compile(r"^[^\x00-\x1f/\\]{1,256}$")
DAG_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")
DAG_RUN_ID_RE = re.compile(r"^[^\x00-\x1f]{1,250}$")


class BadQuery(PachflowError, ValueError):
    """A lookup parameter is malformed or missing; the message names it."""


@dataclass(frozen=True)
class CommitRef:
    """``project/repo@commit``; ``project`` is None when the user left it out."""

    project: str | None
    repo: str
    commit: str


def run_id(value: str, name: str = "run_id") -> str:
    text = (value or "").strip()
    if not RUN_ID_RE.match(text):
        raise BadQuery(f"{name} {value!r}: expected an MLflow run id (32 lowercase hex characters)")
    return text


def commit_ref(value: str, name: str = "commit") -> CommitRef:
    """Parse ``[project/]repo@commit`` (commit = 32 hex characters)."""
    text = (value or "").strip()
    left, at, commit = text.rpartition("@")
    project, slash, repo = left.rpartition("/")
    if not at or not repo:
        raise BadQuery(f"{name} {value!r}: expected PROJECT/REPO@COMMIT_ID")
    if slash and not PFS_NAME_RE.match(project):
        raise BadQuery(f"{name} {value!r}: project {project!r} is not a Pachyderm project name")
    if not PFS_NAME_RE.match(repo):
        raise BadQuery(f"{name} {value!r}: repo {repo!r} is not a Pachyderm repo name")
    if not COMMIT_ID_RE.match(commit):
        raise BadQuery(f"{name} {value!r}: commit id {commit!r} is not 32 lowercase hex characters")
    return CommitRef(project or None, repo, commit)


def model_name(value: str, name: str = "model") -> str:
    text = (value or "").strip()
    if not MODEL_NAME_RE.match(text):
        raise BadQuery(f"{name} {value!r}: expected a registered model name (no '/', at most 256 characters)")
    return text


def version(value: str, name: str = "version") -> str:
    text = (value or "").strip()
    if not VERSION_RE.match(text):
        raise BadQuery(f"{name} {value!r}: expected a model version number (1, 2, ...)")
    return text


def alias(value: str, name: str = "alias") -> str:
    text = (value or "").strip()
    if not ALIAS_RE.match(text):
        raise BadQuery(f"{name} {value!r}: expected a model alias (letters, digits, '_' or '-')")
    return text


def dag_id(value: str, name: str = "dag_id") -> str:
    text = (value or "").strip()
    if not DAG_ID_RE.match(text):
        raise BadQuery(f"{name} {value!r}: expected an Airflow DAG id")
    return text


def dag_run_id(value: str, name: str = "dag_run_id") -> str:
    text = value or ""
    if not DAG_RUN_ID_RE.match(text):
        raise BadQuery(f"{name} {value!r}: expected an Airflow DAG run id")
    return text


@dataclass(frozen=True)
class Lookup:
    """One lookup: exactly one of run id, model (+ version or alias), commit, or DAG run (+ task)."""

    run_id: str | None = None
    model: str | None = None
    version: str | None = None
    alias: str | None = None
    commit: CommitRef | None = None
    dag_id: str | None = None
    dag_run_id: str | None = None
    task_id: str | None = None

    def describe(self) -> str:
        if self.run_id:
            return f"MLflow run {self.run_id}"
        if self.model:
            return f"model {self.model} " + (f"version {self.version}" if self.version else f"@{self.alias}")
        if self.commit:
            project = f"{self.commit.project}/" if self.commit.project else ""
            return f"commit {project}{self.commit.repo}@{self.commit.commit}"
        task = f", task {self.task_id}" if self.task_id else ""
        return f"DAG {self.dag_id}, run {self.dag_run_id}{task}"


def lookup(
    *,
    run_id_: str | None = None,
    model: str | None = None,
    version_: str | None = None,
    alias_: str | None = None,
    commit: str | None = None,
    dag_id_: str | None = None,
    dag_run_id_: str | None = None,
    task_id: str | None = None,
) -> Lookup:
    """Validate the parameters of a lookup; empty strings count as not given."""
    given = [
        name
        for name, value in (("run_id", run_id_), ("model", model), ("commit", commit), ("dag_id", dag_id_))
        if value not in (None, "")
    ]
    if len(given) != 1:
        raise BadQuery(
            "give exactly one of run_id, model (with version or alias), commit, or dag_id with dag_run_id"
            + (f" (got {', '.join(given)})" if given else "")
        )
    if run_id_:
        return Lookup(run_id=run_id(run_id_))
    if model:
        if bool(version_) == bool(alias_):
            raise BadQuery(f"model {model!r}: give exactly one of version or alias")
        return Lookup(
            model=model_name(model),
            version=version(version_) if version_ else None,
            alias=alias(alias_) if alias_ else None,
        )
    if commit:
        return Lookup(commit=commit_ref(commit))
    if not dag_run_id_:
        raise BadQuery("dag_id given without dag_run_id: give both")
    return Lookup(
        dag_id=dag_id(dag_id_ or ""),
        dag_run_id=dag_run_id(dag_run_id_),
        task_id=dag_id(task_id, "task_id") if task_id else None,
    )
