"""admin_v2.API, versionpb_v2.API and metadata.API adapters."""

from __future__ import annotations

from typing import Any

import betterproto
from pachyderm_sdk.api import admin, metadata, version

from pachd_lite.api import convert as cv
from pachd_lite.errors import InvalidArgument
from pachd_lite.pfs.cluster import cluster_id, cluster_metadata
from pachd_lite.pfs.metadata import CLUSTER, MetadataEdit, edit_metadata
from pachd_lite.pfs.model import PfsContext

SERVER_VERSION = version.Version(
    major=2,
    minor=12,
    micro=2,
    additional="-pachd-lite",
    git_commit="pachd-lite",
    git_tree_modified="false",
    build_date="",
    go_version="none (pachd-lite, Python)",
    platform="pachd-lite",
)


class VersionApi:
    def GetVersion(self, req: Any, context: Any) -> version.Version:
        return SERVER_VERSION


class AdminApi:
    def __init__(self, ctx: PfsContext) -> None:
        self.ctx = ctx
        self.id = cluster_id(ctx)

    def InspectCluster(self, req: admin.InspectClusterRequest, context: Any) -> admin.ClusterInfo:
        return admin.ClusterInfo(
            id=self.id,
            deployment_id=self.id,
            warnings_ok=True,
            warnings=[],
            metadata=cluster_metadata(self.ctx),
            web_resources=admin.WebResource(),
        )


def _edit(msg: metadata.Edit) -> MetadataEdit:
    target_field, target = betterproto.which_one_of(msg, "target")
    if target_field == "project":
        t: object = cv.project_from_picker(target)
    elif target_field == "repo":
        t = cv.repo_from_picker(target)
    elif target_field == "branch":
        t = cv.branch_from_picker(target)
    elif target_field == "commit":
        t = cv.commit_from_picker(target)
    elif target_field == "cluster":
        t = CLUSTER
    elif target_field == "pipeline":
        name = target.name
        t = ("pipeline", cv.project_from_picker(name.project), name.name)
    else:
        raise InvalidArgument("metadata edit has no target")
    op, body = betterproto.which_one_of(msg, "op")
    if op == "replace":
        return MetadataEdit(t, op, replacement=dict(body.replacement))
    if op in ("add_key", "edit_key"):
        return MetadataEdit(t, op, key=body.key, value=body.value)
    if op == "delete_key":
        return MetadataEdit(t, op, key=body.key)
    raise InvalidArgument("metadata edit has no operation")


class MetadataApi:
    def __init__(self, ctx: PfsContext) -> None:
        self.ctx = ctx

    def EditMetadata(self, req: metadata.EditMetadataRequest, context: Any) -> metadata.EditMetadataResponse:
        edit_metadata(self.ctx, [_edit(e) for e in req.edits])
        return metadata.EditMetadataResponse()
