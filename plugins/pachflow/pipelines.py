"""Create or update Pachyderm pipelines from JSON specs, idempotently.

A pipeline is updated only when its effective spec (what pachd would store, asked with
``create_pipeline_v2(dry_run=True)``) differs from the stored one, so applying the same
specs twice creates no spec commit and no job. Input repos that do not exist yet are
created first; pipelines are applied upstream first. Credentials go into Pachyderm secrets
(``ensure_secret``) that specs reference by name in ``transform.secrets`` (``SecretEnv``), so no
value is ever part of a spec.
"""

from __future__ import annotations

import glob
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pachflow.exceptions import ConfigurationError, PipelineSpecError

if TYPE_CHECKING:
    from pachyderm_sdk import Client

log = logging.getLogger(__name__)

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
DEFAULT_PROJECT = "default"  # pachd's own default project


@dataclass
class ApplyResult:
    """What applying a set of specs did: per pipeline action, and the commit sets (jobs) it started."""

    actions: dict[str, str] = field(default_factory=dict)
    commit_sets: list[str] = field(default_factory=list)
    created_repos: list[str] = field(default_factory=list)
    created_projects: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # name -> created|replaced (never values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": self.actions,
            "commit_sets": self.commit_sets,
            "created_repos": self.created_repos,
            "created_projects": self.created_projects,
            "secrets": self.secrets,
        }


def spec_files(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Expand files, directories (their ``*.json``) and globs into a sorted list of spec files."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    found: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found += sorted(p.glob("*.json"))
        elif p.is_file():
            found.append(p)
        elif glob.has_magic(str(item)):
            found += sorted(Path(m) for m in glob.glob(str(item)) if Path(m).is_file())
        else:
            raise PipelineSpecError(f"pipeline spec {str(item)!r}: no such file or directory")
    if not found:
        raise PipelineSpecError(f"no pipeline spec files (*.json) in {items}")
    return found


def load_spec(path: Path) -> dict[str, Any]:
    """Read one spec file; errors name the file and the line."""
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PipelineSpecError(f"{path}: line {err.lineno}: invalid JSON: {err.msg}") from err
    if not isinstance(spec, dict):
        raise PipelineSpecError(f"{path}: a pipeline spec must be a JSON object")
    name = (spec.get("pipeline") or {}).get("name")
    if not name:
        raise PipelineSpecError(f"{path}: field pipeline.name is missing")
    if not (spec.get("transform") or {}).get("cmd") and not (spec.get("transform") or {}).get("image"):
        raise PipelineSpecError(f"{path}: field transform.cmd is missing")
    if "input" not in spec:
        raise PipelineSpecError(f"{path}: field input is missing")
    return spec


def spec_project(spec: Mapping[str, Any]) -> str | None:
    """The project a spec names for its pipeline (``pipeline.project.name``), or None."""
    return ((spec.get("pipeline") or {}).get("project") or {}).get("name") or None


def choose_project(
    spec: Mapping[str, Any], path: Any, *, explicit: str | None, explicit_from: str = ""
) -> str:
    """The project a spec's pipeline goes to: its own, else ``explicit``, else ``default``.

    ``explicit`` is a project the task or its connection sets (``explicit_from`` says which); a spec
    naming another project is a :class:`ConfigurationError` naming both and the spec file, never
    silently moved.
    """
    own = spec_project(spec)
    if own and explicit and own != explicit:
        raise ConfigurationError(
            f"{path}: pipeline.project is {own!r} but the task's project is {explicit!r} (set by "
            f"{explicit_from or 'the task'}); remove one of them or make them agree"
        )
    return own or explicit or DEFAULT_PROJECT


def with_overrides(
    spec: dict[str, Any],
    *,
    project: str,
    env: Mapping[str, Mapping[str, Any]] | None = None,
    secret_env: Mapping[str, Sequence[SecretEnv]] | None = None,
) -> dict[str, Any]:
    """Return a copy of ``spec`` in ``project`` with ``transform.env`` and ``transform.secrets`` extended.

    ``project`` fills in a spec without one (see :func:`choose_project`); its PFS inputs that name no
    project read from it too. ``env`` maps a pipeline name (or ``"*"`` for every pipeline) to
    variables; values become strings. ``secret_env`` maps a pipeline name (or ``"*"``) to variables
    read from a Pachyderm secret: the spec gets ``transform.secrets`` entries naming the secret and
    key, never the value, and loses any ``transform.env`` entry of the same name.
    """
    out = json.loads(json.dumps(spec))
    _place_in_project(out, project)
    name = out["pipeline"]["name"]
    extra: dict[str, str] = {}
    for key in ("*", name):
        for var, value in ((env or {}).get(key) or {}).items():
            extra[str(var)] = "" if value is None else str(value)
    if extra:
        transform = out.setdefault("transform", {})
        transform["env"] = {**(transform.get("env") or {}), **extra}
    refs = [ref for key in ("*", name) for ref in (secret_env or {}).get(key) or ()]
    if refs:
        transform = out.setdefault("transform", {})
        names = {ref.env_var for ref in refs}
        kept = [
            s for s in transform.get("secrets") or [] if (s.get("envVar") or s.get("env_var")) not in names
        ]
        transform["secrets"] = kept + [ref.to_spec() for ref in refs]
        if transform.get("env"):
            transform["env"] = {k: v for k, v in transform["env"].items() if k not in names}
    out.pop("update", None)
    out.pop("reprocess", None)
    return out


def _place_in_project(spec: dict[str, Any], project: str) -> None:
    """Put the pipeline, and its PFS inputs that name no project, into ``project`` (as pachd would)."""
    own = spec_project(spec)
    if own and own != project:
        raise PipelineSpecError(
            f"pipeline {spec['pipeline']['name']!r} names project {own!r}, not {project!r}"
        )
    spec["pipeline"]["project"] = {"name": project}
    pending = [spec.get("input") or {}]
    while pending:
        node = pending.pop()
        pfs = node.get("pfs")
        if pfs is not None and not pfs.get("project"):
            pfs["project"] = project
        for key in ("cross", "union", "join", "group"):
            pending.extend(node.get(key) or [])


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable a pipeline reads from a key of a Pachyderm (Kubernetes) secret."""

    env_var: str
    secret: str
    key: str

    def to_spec(self) -> dict[str, str]:
        return {"name": self.secret, "key": self.key, "envVar": self.env_var}


def ensure_secret(client: Client, name: str, data: Mapping[str, str]) -> str:
    """Make Pachyderm secret ``name`` hold exactly ``data``; returns "created" or "replaced".

    pachd's CreateSecret is Kubernetes' Create (no update) and no API returns the values, so an
    existing secret is deleted and created again (pachd-lite jobs starting in between wait for it).
    Nothing here logs or raises with a value in it.
    """
    import grpc
    from pachyderm_sdk.api import pps

    ref = pps.Secret(name=name)
    action = "created"
    for attempt in (1, 2):
        try:
            client.pps.inspect_secret(secret=ref)
        except grpc.RpcError as err:
            if not _not_found(err):
                raise
        else:
            client.pps.delete_secret(secret=ref)
            action = "replaced"
        try:
            client.pps.create_secret(name=name, data=dict(data))
            return action
        except grpc.RpcError as err:  # another apply re-created it in between: replace once more
            if attempt == 2 or "already exists" not in (err.details() or ""):
                raise
    raise AssertionError("unreachable")


def _not_found(err: Any) -> bool:
    """pachd-lite answers NOT_FOUND; pachd wraps Kubernetes' error ('secrets "x" not found')."""
    import grpc

    return err.code() == grpc.StatusCode.NOT_FOUND or "not found" in (err.details() or "")


def input_repos(node: Mapping[str, Any] | None, default_project: str) -> list[tuple[str, str]]:
    """All (project, repo) of PFS inputs in an input tree (pfs, cross, union, join, group)."""
    if not node:
        return []
    found: list[tuple[str, str]] = []
    pfs = node.get("pfs")
    if pfs:
        found.append((pfs.get("project") or default_project, pfs["repo"]))
    for key in ("cross", "union", "join", "group"):
        for child in node.get(key) or []:
            found += input_repos(child, default_project)
    return found


def upstream_first(specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order specs so every pipeline comes after the pipelines whose output it reads."""
    by_name = {s["pipeline"]["name"]: s for s in specs}
    ordered: list[dict[str, Any]] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise PipelineSpecError(f"pipeline specs form a cycle through {name!r}")
        state[name] = "visiting"
        spec = by_name[name]
        own = spec["pipeline"]["project"]["name"]
        for repo_project, repo in input_repos(spec.get("input"), own):
            if (
                repo in by_name
                and repo != name
                and repo_project == by_name[repo]["pipeline"]["project"]["name"]
            ):
                visit(repo)
        state[name] = "done"
        ordered.append(spec)

    for name in by_name:
        visit(name)
    return ordered


def normalize(spec_json: str | Mapping[str, Any], *, keep_salt: bool = False) -> dict[str, Any]:
    """Canonical dict of a CreatePipelineRequest (camelCase, int64 as strings, no update/reprocess)."""
    from pachyderm_sdk.api import pps

    data = json.loads(spec_json) if isinstance(spec_json, str) else dict(spec_json)
    canon = pps.CreatePipelineRequest().from_dict(data).to_dict()
    for key in ("update", "reprocess") + (() if keep_salt else ("salt",)):
        canon.pop(key, None)
    return canon


def apply_pipelines(
    client: Client,
    specs: Iterable[dict[str, Any]],
    *,
    reprocess: bool | Sequence[str] = False,
    reprocess_on_change: bool | Sequence[str] = (),
    create_input_repos: bool = True,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
) -> ApplyResult:
    """Create missing pipelines, update changed ones, leave identical ones alone.

    ``specs`` are complete (each names its project, see :func:`with_overrides`); a missing project
    is created first (logged), like missing input repos with ``create_input_repos``.

    :param secrets: Pachyderm secrets (name -> {key: value}) to create or replace first, for the
        specs' ``transform.secrets`` to reference. Replacing a secret with the same values changes
        no spec, so it updates no pipeline.

    :param reprocess: True (all) or names of pipelines to update with ``reprocess=True`` even when
        unchanged (new salt: every datum is processed again, e.g. to force retraining).
    :param reprocess_on_change: True (all) or names of pipelines whose spec changes must reprocess
        every datum. Pachyderm keeps the salt on a plain update, so unchanged datums are skipped
        and a new hyper-parameter in ``transform.env`` would not retrain without this.
    """
    from pachyderm_sdk.api import pfs, pps

    result = ApplyResult()
    for secret_name, data in (secrets or {}).items():
        result.secrets[secret_name] = ensure_secret(client, secret_name, data)
        log.info(
            "Pachyderm secret %s %s (keys: %s)", secret_name, result.secrets[secret_name], ", ".join(data)
        )
    from pachflow.projects import ensure_project

    ordered = upstream_first(list(specs))
    outputs = {(s["pipeline"]["project"]["name"], s["pipeline"]["name"]) for s in ordered}
    for spec in ordered:
        name = spec["pipeline"]["name"]
        spec_project = spec["pipeline"]["project"]["name"]
        wanted = [spec_project]
        if create_input_repos:
            wanted += [p for p, _ in input_repos(spec.get("input"), spec_project)]
        for project in dict.fromkeys(wanted):
            if project not in result.created_projects and ensure_project(client, project):
                result.created_projects.append(project)
        if create_input_repos:
            for repo_project, repo in input_repos(spec.get("input"), spec_project):
                if (repo_project, repo) in outputs:
                    continue
                repo_msg = pfs.Repo(name=repo, type="user", project=pfs.Project(name=repo_project))
                if not client.pfs.repo_exists(repo_msg):
                    client.pfs.create_repo(
                        repo=repo_msg, description="created by pachflow for pipeline input"
                    )
                    result.created_repos.append(f"{repo_project}/{repo}")
                    log.info("Created input repo %s/%s for pipeline %s", repo_project, repo, name)
        pipeline = pps.Pipeline(name=name, project=pfs.Project(name=spec_project))
        wants_reprocess = _named(reprocess, name)
        desired = json.dumps(spec, sort_keys=True)
        if not client.pps.pipeline_exists(pipeline):
            client.pps.create_pipeline_v2(create_pipeline_request_json=desired)
            action = CREATED
        elif not wants_reprocess and _same_spec(client, pipeline, desired, keep_salt="salt" in spec):
            result.actions[name] = UNCHANGED
            log.info("Pipeline %s/%s: effective spec unchanged, not updated", spec_project, name)
            continue
        else:
            wants_reprocess = wants_reprocess or _named(reprocess_on_change, name)
            client.pps.create_pipeline_v2(
                create_pipeline_request_json=desired, update=True, reprocess=wants_reprocess
            )
            action = UPDATED
        info = client.pps.inspect_pipeline(pipeline=pipeline)
        result.actions[name] = action
        if info.spec_commit and info.spec_commit.id:
            result.commit_sets.append(info.spec_commit.id)
        log.info(
            "Pipeline %s/%s %s (version %s%s)",
            spec_project,
            name,
            action,
            info.version,
            ", reprocessing every datum" if wants_reprocess else "",
        )
    return result


def _named(selection: bool | Sequence[str], name: str) -> bool:
    return selection is True or (not isinstance(selection, bool) and name in selection)


def _same_spec(client: Client, pipeline: Any, desired: str, *, keep_salt: bool) -> bool:
    """Compare what pachd would store for ``desired`` with what it stores now."""
    import grpc

    info = client.pps.inspect_pipeline(pipeline=pipeline, details=True)
    stored = info.effective_spec_json or info.user_spec_json
    if not stored:
        return False
    try:
        effective = client.pps.create_pipeline_v2(
            create_pipeline_request_json=desired, dry_run=True, update=True
        ).effective_create_pipeline_request_json
    except grpc.RpcError as err:  # a server without dry-run: compare the user specs instead
        if err.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        effective, stored = desired, info.user_spec_json or stored
    if not effective:
        effective, stored = desired, info.user_spec_json or stored
    return normalize(effective, keep_salt=keep_salt) == normalize(stored, keep_salt=keep_salt)
