"""EditMetadata: replace/add_key/edit_key/delete_key on projects, repos, branches, commits.

All edits of one request are applied in one transaction (all or nothing).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from pachd_lite.errors import AlreadyExists, InvalidArgument, NotFound
from pachd_lite.pfs import branches, commits, projects, repos
from pachd_lite.pfs.cluster import read_cluster_metadata, write_cluster_metadata
from pachd_lite.pfs.model import BranchRef, CommitRef, PfsContext, RepoRef

CLUSTER = ("cluster",)  # the target of an edit on the cluster (a bare string names a project)


@dataclass
class MetadataEdit:
    """One edit: ``target`` is a project name, RepoRef, BranchRef, CommitRef, ("pipeline", project, name)
    or CLUSTER."""

    target: object
    op: str  # replace | add_key | edit_key | delete_key
    key: str = ""
    value: str = ""
    replacement: dict[str, str] | None = None


def apply_op(current: dict[str, str], edit: MetadataEdit, what: str) -> dict[str, str]:
    if edit.op == "replace":
        return dict(edit.replacement or {})
    if not edit.key:
        raise InvalidArgument(f"metadata {edit.op} on {what}: the key must not be empty")
    updated = dict(current)
    if edit.op == "add_key":
        if edit.key in updated:
            raise AlreadyExists(
                f"metadata add_key on {what}: add_key target key {edit.key!r} already exists; use edit_key instead"
            )
        updated[edit.key] = edit.value
    elif edit.op == "edit_key":
        updated[edit.key] = edit.value
    elif edit.op == "delete_key":
        updated.pop(edit.key, None)
    else:
        raise InvalidArgument(f"metadata edit on {what}: unknown operation {edit.op!r}")
    return updated


def edit_metadata(ctx: PfsContext, edits: list[MetadataEdit]) -> None:
    with ctx.db.tx() as conn:
        for edit in edits:
            _apply(ctx, conn, edit)


def _apply(ctx: PfsContext, conn: sqlite3.Connection, edit: MetadataEdit) -> None:
    target = edit.target
    if isinstance(target, str):
        row = projects.require_project(conn, target)
        projects.set_metadata(
            conn, row["name"], apply_op(json.loads(row["metadata"]), edit, f"project {target}")
        )
    elif isinstance(target, RepoRef):
        row = repos.require_repo(conn, target)
        repos.set_metadata(conn, target, apply_op(json.loads(row["metadata"]), edit, f"repo {target}"))
    elif isinstance(target, BranchRef):
        row = branches.require_branch(conn, target)
        branches.set_metadata(conn, target, apply_op(json.loads(row["metadata"]), edit, f"branch {target}"))
    elif isinstance(target, CommitRef):
        row = commits.resolve_commit(conn, target)
        commits.set_metadata(conn, target, apply_op(json.loads(row["metadata"]), edit, f"commit {target}"))
    elif isinstance(target, tuple) and target and target[0] == "pipeline":
        store = ctx.pipeline_metadata
        if store is None:
            raise NotFound(f"pipeline {target[1]}/{target[2]} not found")
        current = store.get(conn, target[1], target[2])
        store.set(conn, target[1], target[2], apply_op(current, edit, f"pipeline {target[2]}"))
    elif target == CLUSTER:
        write_cluster_metadata(conn, apply_op(read_cluster_metadata(conn), edit, "cluster"))
    else:
        raise InvalidArgument("metadata edit without a target")
