"""All-or-nothing rollback of a registered model's alias, and optionally of the data, to an earlier training.

:func:`plan_rollback` resolves everything and changes nothing: the model version of the target
run, the alias and the version it points at now, and (with ``data``) every source repo of the
run's provenance (a repo no pipeline writes) with the commit the run was trained on, its branch
and that branch's head now. :func:`apply_rollback` then moves every source branch in ONE
Pachyderm transaction (the pipelines re-run once, in one new commit set), then the alias, then
records the rollback on the registered model. A failure at any step undoes the steps before it;
the :class:`~pachflow.exceptions.RollbackError` says what was and was not changed.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pachflow.branches import commit_branch
from pachflow.exceptions import (
    ConfigurationError,
    LineageError,
    NoBranchForCommit,
    RollbackError,
    one_line,
)
from pachflow.settings import parse_commit_ref

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pachyderm_sdk import Client

log = logging.getLogger(__name__)

LAST_ROLLBACK_TAG = "pachflow.last_rollback"
ROLLED_BACK_TO_TAG = "pachflow.rolled_back_to_at"
ALREADY_THERE = "already there"


@dataclass(frozen=True)
class BranchMove:
    """One source branch: where its head is now and the commit the target run was trained on."""

    project: str
    repo: str
    branch: str
    from_commit: str
    to_commit: str

    @property
    def name(self) -> str:
        return f"{self.project}/{self.repo}@{self.branch}"

    @property
    def needed(self) -> bool:
        return self.from_commit != self.to_commit

    def to_dict(self) -> dict[str, Any]:
        return {
            "branch": self.name,
            "project": self.project,
            "repo": self.repo,
            "from_commit": self.from_commit,
            "to_commit": self.to_commit,
            "change": "move" if self.needed else ALREADY_THERE,
        }


@dataclass(frozen=True)
class RollbackPlan:
    """Everything a rollback will do, resolved before anything changes."""

    model_name: str
    alias: str
    mlflow_run_id: str
    to_version: str
    from_version: str | None  # None: the alias does not exist yet and will be created
    project: str | None = None
    data: bool = False
    branches: tuple[BranchMove, ...] = ()
    lineage: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def alias_change(self) -> str:
        if self.from_version is None:
            return "create"
        return ALREADY_THERE if self.from_version == self.to_version else "move"

    @property
    def moves(self) -> list[BranchMove]:
        """The branches whose head really changes."""
        return [b for b in self.branches if b.needed]

    @property
    def changes_anything(self) -> bool:
        return self.alias_change != ALREADY_THERE or bool(self.moves)

    def describe(self) -> str:
        """The plan as a few human-readable lines."""
        target = f"version {self.to_version} (run {self.mlflow_run_id})"
        if self.alias_change == "create":
            lines = [f"{self.model_name}@{self.alias}: create the alias on {target}"]
        elif self.alias_change == ALREADY_THERE:
            lines = [f"{self.model_name}@{self.alias}: already on {target}"]
        else:
            lines = [f"{self.model_name}@{self.alias}: version {self.from_version} -> {target}"]
        for b in self.branches:
            suffix = " (already there)" if not b.needed else ""
            lines.append(f"{b.name}: {b.from_commit} -> {b.to_commit}{suffix}")
        if not self.data:
            lines.append("data: not moved (data=False)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": "rollback",
            "model_name": self.model_name,
            "alias": self.alias,
            "mlflow_run_id": self.mlflow_run_id,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "alias_change": self.alias_change,
            "project": self.project,
            "data": [b.to_dict() for b in self.branches] if self.data else None,
            "lineage": self.lineage,
        }


# -- planning ------------------------------------------------------------------------------------
def plan_rollback(
    mlflow_client: MlflowClient,
    client: Client | None,
    *,
    model_name: str,
    alias: str,
    to_run_id: str | None = None,
    to_commit: str | None = None,
    data: bool = False,
    project: str | None = None,
    create_alias: bool = False,
) -> RollbackPlan:
    """Resolve a rollback of ``model_name@alias`` to the run ``to_run_id`` (or the training behind
    ``to_commit``, ``[project/]repo@id``), without changing anything.

    ``data`` also plans moving every source repo's branch back to the commit that run was trained
    on (needs ``client``). ``project`` is the Pachyderm project of the run's repos; when the run
    records its own project, a different explicit one is an error. An alias the model does not have
    is an error unless ``create_alias``.
    """
    if not model_name:
        raise ConfigurationError("model_name is required: the registered MLflow model whose alias moves")
    if not alias:
        raise ConfigurationError("alias is required: the alias of the registered model to move")
    if bool(to_run_id) == bool(to_commit):
        given = "both" if to_run_id else "neither"
        raise ConfigurationError(
            f"give exactly one of to_run_id or to_commit ({given} given: "
            f"to_run_id={to_run_id!r}, to_commit={to_commit!r})"
        )
    if data and client is None:
        raise ConfigurationError("data=True moves source branches back and needs pachd (a Pachyderm client)")
    if to_commit:
        to_run_id, project = _run_of_commit(mlflow_client, client, to_commit, project, model_name)
    assert to_run_id is not None
    record = _lineage_of_run(mlflow_client, client, to_run_id, model_name, project)
    project = _resolve_project(project, record, to_run_id)
    to_version, from_version = _versions(mlflow_client, model_name, alias, to_run_id, create_alias)
    branches: tuple[BranchMove, ...] = ()
    if data:
        assert client is not None
        if not project:
            raise ConfigurationError(
                f"project: run {to_run_id} records no pachyderm.project; give the Pachyderm project"
            )
        branches = tuple(_plan_branches(client, project, record, to_run_id))
    return RollbackPlan(
        model_name=model_name,
        alias=alias,
        mlflow_run_id=to_run_id,
        to_version=to_version,
        from_version=from_version,
        project=project,
        data=data,
        branches=branches,
        lineage=record,
    )


def _run_of_commit(
    mlflow_client: Any, client: Any, to_commit: str, project: str | None, model_name: str
) -> tuple[str, str]:
    """The one training run of ``model_name`` behind ``to_commit``, and the project it names."""
    from pachflow.lineage import commit_metadata, lineage_for_commit

    commit_project, repo, commit_id = parse_commit_ref(to_commit, "to_commit")
    if commit_project and project and commit_project != project:
        raise ConfigurationError(
            f"to_commit {to_commit!r} names project {commit_project!r} but project is {project!r}"
        )
    project = commit_project or project
    if not project:
        raise ConfigurationError(
            f"to_commit {to_commit!r}: no project; write it as PROJECT/REPO@COMMIT_ID or give project"
        )
    if client is not None:
        # A training commit names its run in its metadata: no search needed.
        run_id = _metadata_run(commit_metadata, client, project, repo, commit_id)
        if run_id:
            return run_id, project
    records = lineage_for_commit(
        client,
        mlflow_client,
        project=project,
        repo=repo,
        commit_id=commit_id,
        model_name=model_name,
    )
    trained = [r for r in records if r.get("model_version")]
    exact = [r for r in trained if r.get("commit_set") == commit_id]
    runs = list(dict.fromkeys(r["mlflow_run_id"] for r in (exact or trained)))
    if not runs:
        found = ", ".join(r["mlflow_run_id"] for r in records) or "none"
        raise LineageError(f"no training of model {model_name!r} used {to_commit} (runs found: {found})")
    if len(runs) > 1:
        raise ConfigurationError(
            f"to_commit {to_commit}: several trainings of {model_name!r} used it (runs {', '.join(runs)}); "
            "give to_run_id instead"
        )
    return runs[0], project


def _metadata_run(commit_metadata: Any, client: Any, project: str, repo: str, commit_id: str) -> str | None:
    import grpc

    try:
        return commit_metadata(client, project, repo, commit_id).get("mlflow.run_id") or None
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            raise LineageError(f"commit {project}/{repo}@{commit_id} not found: {err.details()}") from err
        raise


def _lineage_of_run(
    mlflow_client: Any, client: Any, run_id: str, model_name: str, project: str | None
) -> dict[str, Any]:
    from pachflow.lineage import lineage_for_run

    kwargs: dict[str, Any] = {"model_name": model_name, "client": client}
    # Older lookups read provenance in a project given by the caller; newer ones use the run's own.
    if project and "project" in inspect.signature(lineage_for_run).parameters:
        kwargs["project"] = project
    return lineage_for_run(mlflow_client, run_id, **kwargs)


def _resolve_project(project: str | None, record: dict[str, Any], run_id: str) -> str | None:
    recorded = record.get("project")
    if project and recorded and project != recorded:
        raise ConfigurationError(
            f"project {project!r} contradicts project {recorded!r} recorded by run {run_id}; "
            "give the run's project (or none)"
        )
    return project or recorded


def _versions(
    mlflow_client: Any, model_name: str, alias: str, run_id: str, create_alias: bool
) -> tuple[str, str | None]:
    """(version of ``run_id``, version ``alias`` points at now or None when it will be created)."""
    registered = mlflow_client.get_registered_model(model_name)
    versions = [
        mv for mv in mlflow_client.search_model_versions(f"run_id = '{run_id}'") if mv.name == model_name
    ]
    if not versions:
        raise LineageError(
            f"run {run_id} has no version of registered model {model_name!r}; record its lineage first"
        )
    to_version = str(min(int(v.version) for v in versions))
    aliases = {name: str(v) for name, v in (registered.aliases or {}).items()}
    if alias in aliases:
        return to_version, aliases[alias]
    if not create_alias:
        existing = ", ".join(f"{a} -> version {v}" for a, v in sorted(aliases.items())) or "none"
        raise ConfigurationError(
            f"alias {alias!r} does not exist on registered model {model_name!r} (its aliases: {existing}); "
            "check the alias name, or allow creating it (create_alias=True, --create-alias)"
        )
    return to_version, None


def source_commits(client: Any, project: str, record: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(project, repo, commit) of the run's source repos: repos of its provenance no pipeline writes.

    Taken from the record's ``sources`` when the lineage lookup provides them, else found by asking
    pachd which repos of ``commits`` are pipelines. Repo keys are ``repo`` in ``project`` or
    ``other_project/repo``.
    """
    from pachyderm_sdk.api import pfs, pps

    commits: dict[str, str] = record.get("commits") or {}

    def split(key: str) -> tuple[str, str]:
        key_project, _, repo = key.rpartition("/")
        return key_project or project, repo

    def is_pipeline(key: str) -> bool:
        p, repo = split(key)
        return client.pps.pipeline_exists(pps.Pipeline(name=repo, project=pfs.Project(name=p)))

    keys = record.get("sources") or [key for key in commits if not is_pipeline(key)]
    return [(*split(key), commits[key]) for key in keys]


def _plan_branches(client: Any, project: str, record: dict[str, Any], run_id: str) -> list[BranchMove]:
    from pachyderm_sdk.api import pfs

    sources = source_commits(client, project, record)
    if not sources:
        repos = list(record.get("commits") or {})
        raise LineageError(f"run {run_id}: its provenance has no source repo (repos {repos})")
    moves = []
    for repo_project, repo, commit_id in sources:
        pfs_repo = pfs.Repo(name=repo, type="user", project=pfs.Project(name=repo_project))
        try:
            branch = commit_branch(client, repo_project, repo, commit_id)
        except NoBranchForCommit as err:
            raise LineageError(f"run {run_id}: {err}") from err
        head = client.pfs.inspect_branch(branch=pfs.Branch(repo=pfs_repo, name=branch)).head.id
        moves.append(BranchMove(repo_project, repo, branch, from_commit=head, to_commit=commit_id))
    return moves


# -- applying ------------------------------------------------------------------------------------
def apply_rollback(
    plan: RollbackPlan,
    mlflow_client: MlflowClient,
    client: Client | None = None,
    *,
    reason: str = "",
) -> dict[str, Any]:
    """Carry out ``plan``: source branches in one transaction, then the alias, then the record tags.

    Refuses (changing nothing) when a branch head or the alias moved since the plan. On any failure
    the earlier steps are undone and :class:`RollbackError` lists what was and was not changed.
    Returns the plan as a dict plus what happened (``alias_moved``, ``moved`` per branch,
    ``commit_set`` of the pipelines' re-run, ``at``, ``reason``).
    """
    moves = plan.moves
    if moves and client is None:
        raise ConfigurationError("the plan moves source branches and needs pachd (a Pachyderm client)")
    _check_still_current(plan, mlflow_client, client)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    step = _Steps(plan, mlflow_client, client)
    commit_set = None
    try:
        if moves:
            step.run("branches", lambda: _move_branches(client, [(m, m.to_commit) for m in moves]))
            commit_set = _downstream_commit_set(client, moves)
        if plan.alias_change != ALREADY_THERE:
            step.run(
                "alias",
                lambda: mlflow_client.set_registered_model_alias(
                    plan.model_name, plan.alias, plan.to_version
                ),
            )
        if plan.changes_anything:
            step.run("tags", lambda: _record(mlflow_client, plan, at, reason, commit_set, step))
    except _StepFailed as failed:
        raise RollbackError(step.failure_message(failed)) from failed.__cause__
    result = plan.to_dict()
    result.update(
        dry_run=False,
        alias_moved=plan.alias_change != ALREADY_THERE,
        commit_set=commit_set,
        at=at,
        reason=reason,
    )
    for entry, b in zip(result["data"] or [], plan.branches, strict=True):
        entry["moved"] = b.needed
    return result


def rollback(
    mlflow_client: MlflowClient,
    client: Client | None,
    *,
    model_name: str,
    alias: str,
    to_run_id: str | None = None,
    to_commit: str | None = None,
    data: bool = False,
    project: str | None = None,
    create_alias: bool = False,
    reason: str = "",
) -> dict[str, Any]:
    """:func:`plan_rollback` then :func:`apply_rollback`."""
    plan = plan_rollback(
        mlflow_client,
        client,
        model_name=model_name,
        alias=alias,
        to_run_id=to_run_id,
        to_commit=to_commit,
        data=data,
        project=project,
        create_alias=create_alias,
    )
    return apply_rollback(plan, mlflow_client, client, reason=reason)


def _check_still_current(plan: RollbackPlan, mlflow_client: Any, client: Any) -> None:
    """Refuse a stale plan: a push or another rollback since planning would be silently overwritten."""
    stale = []
    if client is not None:
        heads = _heads(client, plan.branches)
        stale += [
            f"{b.name} is at {heads[b.name]}, not {b.from_commit}"
            for b in plan.branches
            if heads[b.name] != b.from_commit
        ]
    aliases = mlflow_client.get_registered_model(plan.model_name).aliases or {}
    now = str(aliases[plan.alias]) if plan.alias in aliases else None
    if now != plan.from_version:
        stale.append(f"{plan.model_name}@{plan.alias} is on version {now}, not {plan.from_version}")
    if stale:
        raise RollbackError(f"nothing changed: the plan is out of date ({'; '.join(stale)}); plan again")


def _heads(client: Any, branches: Any) -> dict[str, str]:
    from pachyderm_sdk.api import pfs

    out = {}
    for b in branches:
        repo = pfs.Repo(name=b.repo, type="user", project=pfs.Project(name=b.project))
        out[b.name] = client.pfs.inspect_branch(branch=pfs.Branch(repo=repo, name=b.branch)).head.id
    return out


def _move_branches(client: Any, targets: list[tuple[BranchMove, str]]) -> None:
    """Set every branch's head in one Pachyderm transaction: all of them move, or none."""
    from pachyderm_sdk.api import pfs

    with client.transaction.transaction():
        for b, commit_id in targets:
            repo = pfs.Repo(name=b.repo, type="user", project=pfs.Project(name=b.project))
            # client.pfs is looked up per call: entering the transaction rebuilt the client's stubs
            client.pfs.create_branch(
                branch=pfs.Branch(repo=repo, name=b.branch), head=pfs.Commit(repo=repo, id=commit_id)
            )


def _downstream_commit_set(client: Any, moves: list[BranchMove]) -> str | None:
    """The commit set the branch move started downstream (its jobs' id), or None without downstream."""
    from pachyderm_sdk.api import pfs

    b = moves[0]
    repo = pfs.Repo(name=b.repo, type="user", project=pfs.Project(name=b.project))
    try:
        info = client.pfs.inspect_branch(branch=pfs.Branch(repo=repo, name=b.branch))
        for downstream in info.subvenance or []:
            return client.pfs.inspect_branch(branch=downstream).head.id
    except Exception as err:  # only descriptive: the move itself succeeded
        log.warning("Could not find the commit set started by the rollback: %s", err)
    return None


def _record(
    mlflow_client: Any, plan: RollbackPlan, at: str, reason: str, commit_set: str | None, step: _Steps
) -> None:
    summary = {
        "from_version": plan.from_version,
        "to_version": plan.to_version,
        "mlflow_run_id": plan.mlflow_run_id,
        "at": at,
        "reason": reason,
        "branches": {b.name: b.to_commit for b in plan.moves},
        "commit_set": commit_set,
    }
    previous = mlflow_client.get_model_version(plan.model_name, plan.to_version).tags.get(ROLLED_BACK_TO_TAG)
    mlflow_client.set_model_version_tag(plan.model_name, plan.to_version, ROLLED_BACK_TO_TAG, at)
    step.version_tag_previous = (previous,)
    mlflow_client.set_registered_model_tag(plan.model_name, LAST_ROLLBACK_TAG, json.dumps(summary))


class _StepFailed(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Steps:
    """Runs the rollback's steps in order and undoes the finished ones when a later one fails."""

    def __init__(self, plan: RollbackPlan, mlflow_client: Any, client: Any) -> None:
        self.plan = plan
        self.mlflow_client = mlflow_client
        self.client = client
        self.done: list[str] = []
        self.version_tag_previous: tuple[str | None] | None = None
        self.undo_notes: list[str] = []
        self.not_undone: list[str] = []

    def run(self, name: str, action: Any) -> None:
        try:
            action()
        except Exception as err:
            self._undo()
            raise _StepFailed(name) from err
        self.done.append(name)

    def _undo(self) -> None:
        plan = self.plan
        if self.version_tag_previous is not None:
            previous = self.version_tag_previous[0]
            self._try(
                f"tag {ROLLED_BACK_TO_TAG} of version {plan.to_version}",
                lambda: (
                    self.mlflow_client.set_model_version_tag(
                        plan.model_name, plan.to_version, ROLLED_BACK_TO_TAG, previous
                    )
                    if previous is not None
                    else self.mlflow_client.delete_model_version_tag(
                        plan.model_name, plan.to_version, ROLLED_BACK_TO_TAG
                    )
                ),
            )
        if "alias" in self.done:
            if plan.from_version is None:
                undo_alias = lambda: self.mlflow_client.delete_registered_model_alias(  # noqa: E731
                    plan.model_name, plan.alias
                )
            else:
                undo_alias = lambda: self.mlflow_client.set_registered_model_alias(  # noqa: E731
                    plan.model_name, plan.alias, plan.from_version
                )
            self._try(f"alias {plan.model_name}@{plan.alias}", undo_alias)
        if "branches" in self.done:
            moves = plan.moves
            if self._try(
                ", ".join(m.name for m in moves),
                lambda: _move_branches(self.client, [(m, m.from_commit) for m in moves]),
            ):
                self.undo_notes.append(
                    f"the branches had moved and were moved back in one transaction "
                    f"({', '.join(m.name for m in moves)}; the pipelines re-run on the original heads)"
                )

    def _try(self, what: str, action: Any) -> bool:
        try:
            action()
            return True
        except Exception as err:
            self.not_undone.append(f"{what} (undo failed: {one_line(err)})")
            return False

    def failure_message(self, failed: _StepFailed) -> str:
        plan = self.plan
        what = {
            "branches": "moving " + ", ".join(m.name for m in plan.moves) + " in one Pachyderm transaction",
            "alias": f"moving alias {plan.model_name}@{plan.alias} to version {plan.to_version}",
            "tags": f"recording the rollback on registered model {plan.model_name!r}",
        }[failed.name]
        head = (
            f"rollback of {plan.model_name}@{plan.alias} to version {plan.to_version} "
            f"(run {plan.mlflow_run_id}) failed while {what}: {one_line(failed.__cause__ or failed)}"
        )
        changed, unchanged = self._state()
        parts = [head]
        if not changed:
            parts.append("nothing is left changed" if self.undo_notes else "nothing changed")
        parts += self.undo_notes
        if unchanged:
            parts.append("unchanged: " + "; ".join(unchanged))
        if changed:
            parts.append("CHANGED and not undone: " + "; ".join(changed))
        return ". ".join(parts)

    def _state(self) -> tuple[list[str], list[str]]:
        """(changed, unchanged) as re-read from MLflow and pachd, so the message reports what is."""
        plan = self.plan
        changed: list[str] = []
        unchanged: list[str] = []
        try:
            aliases = self.mlflow_client.get_registered_model(plan.model_name).aliases or {}
            now = str(aliases[plan.alias]) if plan.alias in aliases else None
            label = f"alias {plan.model_name}@{plan.alias}"
            if now == plan.from_version:
                unchanged.append(f"{label} {'absent' if now is None else f'still on version {now}'}")
            else:
                changed.append(f"{label} on version {now} (was {plan.from_version})")
        except Exception as err:
            changed.append(f"alias {plan.model_name}@{plan.alias}: state unknown ({one_line(err)})")
        if plan.moves and self.client is not None:
            try:
                heads = _heads(self.client, plan.moves)
            except Exception as err:
                changed.append(
                    f"branches {', '.join(m.name for m in plan.moves)}: state unknown ({one_line(err)})"
                )
            else:
                for m in plan.moves:
                    if heads[m.name] == m.from_commit:
                        unchanged.append(f"{m.name} still at {m.from_commit}")
                    else:
                        changed.append(
                            f"{m.name} at {heads[m.name]} (was {m.from_commit}): "
                            f"`pachctl create branch {m.repo}@{m.branch} --head {m.from_commit} --project {m.project}` "
                            "restores it"
                        )
        changed += self.not_undone
        return changed, unchanged


def dry_run_result(plan: RollbackPlan) -> dict[str, Any]:
    """What a dry run reports: the plan, marked as not applied."""
    return {**plan.to_dict(), "dry_run": True, "alias_moved": False, "commit_set": None}


__all__ = [
    "BranchMove",
    "RollbackPlan",
    "apply_rollback",
    "dry_run_result",
    "plan_rollback",
    "rollback",
    "source_commits",
]
