"""pfs_v2.API: translates PFS requests to domain calls (pachd_lite.pfs) and back."""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator
from typing import Any

import betterproto
import grpc
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pfs

from pachd_lite.api import convert as cv
from pachd_lite.api.fastpath import RawAddFile, parse_modify_file
from pachd_lite.errors import InvalidArgument
from pachd_lite.pfs import branches, commit_sets, commits, files, projects, repos
from pachd_lite.pfs.model import PfsContext
from pachd_lite.protojson import is_set

GET_FILE_CHUNK = 19 * 1024 * 1024
TAR_FLUSH = 4 * 1024 * 1024


DESERIALIZERS = {"/pfs_v2.API/ModifyFile": parse_modify_file}


def encode_bytes_value(data: bytes | bytearray | memoryview) -> bytes:
    """google.protobuf.BytesValue wire bytes, without a betterproto round trip (one copy)."""
    n = len(data)
    head = bytearray(b"\x0a")
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            head.append(byte | 0x80)
        else:
            head.append(byte)
            break
    return b"".join((head, data))


def _optional_time(value: Any) -> float | None:
    if value is None:
        return None
    stamp = value.timestamp()
    return stamp if stamp > 0 else None


def _alive(context: grpc.ServicerContext):
    return context.is_active


class PfsApi:
    """Implements the pfs_v2.API methods pachd-lite supports (one method per RPC)."""

    def __init__(self, ctx: PfsContext) -> None:
        self.ctx = ctx

    # --- projects ----------------------------------------------------------------------
    def CreateProject(self, req: pfs.CreateProjectRequest, context: Any) -> Empty:
        projects.create_project(
            self.ctx, req.project.name if req.project else "", req.description, req.update
        )
        return Empty()

    def _project_info(self, name: str) -> pfs.ProjectInfo:
        info = projects.inspect_project(self.ctx, name)
        return pfs.ProjectInfo(
            project=pfs.Project(name=info.name),
            description=info.description,
            created_at=cv.ts(info.created_at),
            metadata=dict(info.metadata),
        )

    def InspectProject(self, req: pfs.InspectProjectRequest, context: Any) -> pfs.ProjectInfo:
        return self._project_info(req.project.name if req.project else "")

    def InspectProjectV2(
        self, req: pfs.InspectProjectV2Request, context: Any
    ) -> pfs.InspectProjectV2Response:
        return pfs.InspectProjectV2Response(info=self._project_info(req.project.name), defaults_json="{}")

    def ListProject(self, req: pfs.ListProjectRequest, context: Any) -> Iterator[pfs.ProjectInfo]:
        for info in projects.list_projects(self.ctx):
            yield pfs.ProjectInfo(
                project=pfs.Project(name=info.name),
                description=info.description,
                created_at=cv.ts(info.created_at),
                metadata=dict(info.metadata),
            )

    def DeleteProject(self, req: pfs.DeleteProjectRequest, context: Any) -> Empty:
        projects.delete_project(self.ctx, req.project.name, req.force)
        return Empty()

    # --- repos -------------------------------------------------------------------------
    def CreateRepo(self, req: pfs.CreateRepoRequest, context: Any) -> Empty:
        repos.create_repo(self.ctx, cv.repo_ref(req.repo), req.description, req.update)
        return Empty()

    def InspectRepo(self, req: pfs.InspectRepoRequest, context: Any) -> pfs.RepoInfo:
        return cv.to_repo_info(repos.inspect_repo(self.ctx, cv.repo_ref(req.repo)))

    def ListRepo(self, req: pfs.ListRepoRequest, context: Any) -> Iterator[pfs.RepoInfo]:
        names = [p.name for p in req.projects if p.name]
        for info in repos.list_repos(self.ctx, req.type, names):
            yield cv.to_repo_info(info)

    def DeleteRepo(self, req: pfs.DeleteRepoRequest, context: Any) -> pfs.DeleteRepoResponse:
        return pfs.DeleteRepoResponse(deleted=repos.delete_repo(self.ctx, cv.repo_ref(req.repo), req.force))

    def DeleteRepos(self, req: pfs.DeleteReposRequest, context: Any) -> pfs.DeleteReposResponse:
        names = [p.name for p in req.projects if p.name]
        if not names and not req.all:
            raise InvalidArgument("DeleteRepos needs projects or all=true")
        deleted = []
        for info in repos.list_repos(self.ctx, "user", None if req.all else names):
            if repos.delete_repo(self.ctx, info.ref, req.force):
                deleted.append(cv.to_repo(info.ref))
        return pfs.DeleteReposResponse(repos=deleted)

    # --- commits -----------------------------------------------------------------------
    def StartCommit(self, req: pfs.StartCommitRequest, context: Any) -> pfs.Commit:
        parent = cv.commit_ref(req.parent) if cv.has_commit(req.parent) else None
        branch = req.branch
        if (branch is None or not branch.name) and parent is not None and parent.branch:
            branch = req.parent.branch
        info = commits.start_commit(self.ctx, cv.branch_ref(branch), parent, req.description)
        return cv.to_commit(info.ref)

    def FinishCommit(self, req: pfs.FinishCommitRequest, context: Any) -> Empty:
        commits.finish_commit(self.ctx, cv.commit_ref(req.commit), req.description, req.error, req.force)
        return Empty()

    def InspectCommit(self, req: pfs.InspectCommitRequest, context: Any) -> pfs.CommitInfo:
        info = commits.inspect_commit(self.ctx, cv.commit_ref(req.commit), int(req.wait), _alive(context))
        return cv.to_commit_info(info)

    def ListCommit(self, req: pfs.ListCommitRequest, context: Any) -> Iterator[pfs.CommitInfo]:
        infos = commits.list_commits(
            self.ctx,
            cv.repo_ref(req.repo),
            from_=cv.commit_ref(req.from_) if cv.has_commit(req.from_) else None,
            to=cv.commit_ref(req.to) if cv.has_commit(req.to) else None,
            number=req.number,
            reverse=req.reverse,
            origin_kind=int(req.origin_kind),
            started_before=_optional_time(req.started_time),
        )
        for info in infos:
            yield cv.to_commit_info(info)

    def SubscribeCommit(self, req: pfs.SubscribeCommitRequest, context: Any) -> Iterator[pfs.CommitInfo]:
        for info in commits.subscribe_commits(
            self.ctx,
            cv.repo_ref(req.repo),
            branch=req.branch,
            from_=cv.commit_ref(req.from_) if cv.has_commit(req.from_) else None,
            state=int(req.state),
            origin_kind=int(req.origin_kind),
            alive=_alive(context),
        ):
            yield cv.to_commit_info(info)

    def ClearCommit(self, req: pfs.ClearCommitRequest, context: Any) -> Empty:
        commits.clear_commit(self.ctx, cv.commit_ref(req.commit))
        return Empty()

    # --- commit sets -------------------------------------------------------------------
    def InspectCommitSet(self, req: pfs.InspectCommitSetRequest, context: Any) -> Iterator[pfs.CommitInfo]:
        for info in commit_sets.inspect_commit_set(self.ctx, req.commit_set.id, req.wait, _alive(context)):
            yield cv.to_commit_info(info)

    def ListCommitSet(self, req: pfs.ListCommitSetRequest, context: Any) -> Iterator[pfs.CommitSetInfo]:
        project = req.project.name if req.project is not None else ""
        for set_id, infos in commit_sets.list_commit_sets(self.ctx, project):
            yield pfs.CommitSetInfo(
                commit_set=pfs.CommitSet(id=set_id), commits=[cv.to_commit_info(i) for i in infos]
            )

    def SquashCommitSet(self, req: pfs.SquashCommitSetRequest, context: Any) -> Empty:
        commit_sets.drop_commit_set(self.ctx, req.commit_set.id, squash=True)
        return Empty()

    def DropCommitSet(self, req: pfs.DropCommitSetRequest, context: Any) -> Empty:
        commit_sets.drop_commit_set(self.ctx, req.commit_set.id)
        return Empty()

    def _walk_commits(self, req: Any, upstream: bool) -> Iterator[pfs.CommitInfo]:
        starts = [cv.commit_from_picker(p) for p in req.start]
        for info in commit_sets.walk_commits(self.ctx, starts, upstream, req.max_commits, req.max_depth):
            yield cv.to_commit_info(info)

    def WalkCommitProvenance(
        self, req: pfs.WalkCommitProvenanceRequest, context: Any
    ) -> Iterator[pfs.CommitInfo]:
        return self._walk_commits(req, upstream=True)

    def WalkCommitSubvenance(
        self, req: pfs.WalkCommitSubvenanceRequest, context: Any
    ) -> Iterator[pfs.CommitInfo]:
        return self._walk_commits(req, upstream=False)

    def FindCommits(self, req: pfs.FindCommitsRequest, context: Any) -> Iterator[pfs.FindCommitsResponse]:
        found, last, searched = files.find_commits(
            self.ctx, cv.commit_ref(req.start), req.file_path, req.limit
        )
        for ref in found:
            yield pfs.FindCommitsResponse(found_commit=cv.to_commit(ref), commits_searched=searched)
        yield pfs.FindCommitsResponse(last_searched_commit=cv.to_commit(last), commits_searched=searched)

    # --- branches ----------------------------------------------------------------------
    def CreateBranch(self, req: pfs.CreateBranchRequest, context: Any) -> Empty:
        head = cv.commit_ref(req.head) if cv.has_commit(req.head) else None
        trigger = req.trigger.to_json() if is_set(req.trigger) else ""
        branches.create_branch(
            self.ctx, cv.branch_ref(req.branch), head, [cv.branch_ref(b) for b in req.provenance], trigger
        )
        return Empty()

    def InspectBranch(self, req: pfs.InspectBranchRequest, context: Any) -> pfs.BranchInfo:
        return cv.to_branch_info(branches.inspect_branch(self.ctx, cv.branch_ref(req.branch)))

    def ListBranch(self, req: pfs.ListBranchRequest, context: Any) -> Iterator[pfs.BranchInfo]:
        for info in branches.list_branches(self.ctx, cv.repo_ref(req.repo), req.reverse):
            yield cv.to_branch_info(info)

    def DeleteBranch(self, req: pfs.DeleteBranchRequest, context: Any) -> Empty:
        branches.delete_branch(self.ctx, cv.branch_ref(req.branch), req.force)
        return Empty()

    def _walk_branches(self, req: Any, upstream: bool) -> Iterator[pfs.BranchInfo]:
        starts = [cv.branch_from_picker(p) for p in req.start]
        for info in branches.walk_branches(self.ctx, starts, upstream, req.max_branches, req.max_depth):
            yield cv.to_branch_info(info)

    def WalkBranchProvenance(
        self, req: pfs.WalkBranchProvenanceRequest, context: Any
    ) -> Iterator[pfs.BranchInfo]:
        return self._walk_branches(req, upstream=True)

    def WalkBranchSubvenance(
        self, req: pfs.WalkBranchSubvenanceRequest, context: Any
    ) -> Iterator[pfs.BranchInfo]:
        return self._walk_branches(req, upstream=False)

    # --- files -------------------------------------------------------------------------
    def ModifyFile(self, requests: Iterable[pfs.ModifyFileRequest], context: Any) -> Empty:
        session = files.ModifyFileSession(self.ctx)
        try:
            for req in requests:
                if isinstance(req, RawAddFile):
                    session.add_raw(req.path, req.raw, req.datum)
                    # drop this 19 MiB chunk before grpc receives the next one (bounded RSS)
                    req = None
                    continue
                field, body = betterproto.which_one_of(req, "body")
                if field == "add_file":
                    source, value = betterproto.which_one_of(body, "source")
                    if source == "url":
                        session.add_url(body.path, value.url, value.recursive)
                    else:
                        session.add_raw(body.path, value or b"", body.datum)
                elif field == "set_commit":
                    session.set_commit(cv.commit_ref(body))
                elif field == "delete_file":
                    session.delete(body.path)
                elif field == "copy_file":
                    session.copy(body.dst, cv.commit_ref(body.src.commit), body.src.path, body.append)
                else:
                    raise InvalidArgument("ModifyFile request has no operation")
            session.close()
        except BaseException:
            session.abort()
            raise
        return Empty()

    def GetFile(self, req: pfs.GetFileRequest, context: Any) -> Iterator[bytes]:
        if req.url:
            raise InvalidArgument("GetFile to a URL is not supported by pachd-lite")
        info, _snap = files.file_for_read(self.ctx, cv.commit_ref(req.file.commit), req.file.path)
        for chunk in self.ctx.blobs.read_chunks(info.blob, req.offset, GET_FILE_CHUNK):
            yield encode_bytes_value(chunk)

    def GetFileTAR(self, req: pfs.GetFileRequest, context: Any) -> Iterator[bytes]:
        infos = files.tar_infos(self.ctx, cv.commit_ref(req.file.commit), req.file.path)
        buf = bytearray()
        for info in infos:
            ti = tarfile.TarInfo(name=info.path)
            ti.mtime = int(info.committed or 0)
            if info.is_dir:
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                buf += ti.tobuf(format=tarfile.PAX_FORMAT)
                continue
            ti.size = info.size_bytes
            ti.mode = 0o644
            buf += ti.tobuf(format=tarfile.PAX_FORMAT)
            for chunk in self.ctx.blobs.read_chunks(info.blob):
                buf += chunk
                if len(buf) >= TAR_FLUSH:
                    yield encode_bytes_value(buf)
                    buf = bytearray()
            if info.size_bytes % tarfile.BLOCKSIZE:
                buf += b"\0" * (tarfile.BLOCKSIZE - info.size_bytes % tarfile.BLOCKSIZE)
        buf += b"\0" * (tarfile.BLOCKSIZE * 2)
        yield encode_bytes_value(buf)

    def InspectFile(self, req: pfs.InspectFileRequest, context: Any) -> pfs.FileInfo:
        return cv.to_file_info(files.inspect_file(self.ctx, cv.commit_ref(req.file.commit), req.file.path))

    def ListFile(self, req: pfs.ListFileRequest, context: Any) -> Iterator[pfs.FileInfo]:
        marker = req.pagination_marker.path if req.pagination_marker is not None else ""
        for info in files.list_file(
            self.ctx, cv.commit_ref(req.file.commit), req.file.path, marker, req.number, req.reverse
        ):
            yield cv.to_file_info(info)

    def WalkFile(self, req: pfs.WalkFileRequest, context: Any) -> Iterator[pfs.FileInfo]:
        marker = req.pagination_marker.path if req.pagination_marker is not None else ""
        for info in files.walk_file(
            self.ctx, cv.commit_ref(req.file.commit), req.file.path, marker, req.number, req.reverse
        ):
            yield cv.to_file_info(info)

    def GlobFile(self, req: pfs.GlobFileRequest, context: Any) -> Iterator[pfs.FileInfo]:
        infos = files.glob_files(self.ctx, cv.commit_ref(req.commit), req.pattern or "/")
        lower = req.path_range.lower if req.path_range is not None else ""
        upper = req.path_range.upper if req.path_range is not None else ""
        for info in infos:
            if (lower and info.path < lower) or (upper and info.path >= upper):
                continue
            yield cv.to_file_info(info)

    def DiffFile(self, req: pfs.DiffFileRequest, context: Any) -> Iterator[pfs.DiffFileResponse]:
        old = (
            cv.commit_ref(req.old_file.commit)
            if req.old_file is not None and cv.has_commit(req.old_file.commit)
            else None
        )
        old_path = req.old_file.path if req.old_file is not None else ""
        for new_info, old_info in files.diff_file(
            self.ctx, cv.commit_ref(req.new_file.commit), req.new_file.path, old, old_path
        ):
            yield pfs.DiffFileResponse(
                new_file=cv.to_file_info(new_info) if new_info else None,
                old_file=cv.to_file_info(old_info) if old_info else None,
            )
