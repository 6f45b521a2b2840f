"""PachydermPutFilesOperator: push local files into repo@branch as one commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from pachflow.links import PachydermCommitLink


class PachydermPutFilesOperator(BaseOperator):
    """Upload a file, a directory or a glob of files into ``repo@branch`` in ONE commit.

    Files whose content is already at the branch head are not sent again; when nothing changed
    the task is skipped (no commit, so no pipeline job) unless ``force``. Like rsync, a file is
    taken as unchanged when its size and mtime match the manifest the previous push recorded on
    the head commit; otherwise content hashes are compared. A failed upload never
    leaves a partial commit that looks complete: the commit is dropped, or finished with its
    ``error`` set. Returns the commit id (XCom ``return_value``), logs progress in bytes and, when
    ``repo`` is a plain string, emits an Asset event for ``project/repo@branch`` with the commit id.

    :param source: local path, directory or glob, or a list of them (templated).
    :param repo: target repo, created when missing (templated).
    :param branch: target branch (templated).
    :param dest: directory in the repo (templated).
    :param force: push every file even when the head already has the same content (templated).
    :param checksum: compare content hashes even when size and mtime match, like
        ``rsync --checksum`` (templated).
    """

    template_fields: Sequence[str] = ("source", "repo", "branch", "dest", "force", "checksum", "project")
    ui_color = "#d4f0ff"
    operator_extra_links = (PachydermCommitLink(),)

    def __init__(
        self,
        *,
        source: str | Sequence[str],
        repo: str,
        branch: str = "master",
        dest: str = "/",
        force: bool | str = False,
        checksum: bool | str = False,
        create_repo: bool = True,
        project: str | None = None,
        pachyderm_conn_id: str = "pachyderm_default",
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        if emit_asset and "{{" not in repo and "{{" not in branch and "outlets" not in kwargs:
            from pachflow.assets import pachyderm_asset

            kwargs["outlets"] = [pachyderm_asset(repo, branch, project or "default")]
        super().__init__(**kwargs)
        self.source = source
        self.repo = repo
        self.branch = branch
        self.dest = dest
        self.force = force
        self.checksum = checksum
        self.create_repo = create_repo
        self.project = project
        self.pachyderm_conn_id = pachyderm_conn_id
        self._ol: dict[str, Any] = {}

    def execute(self, context: Context) -> str:
        from pachyderm_sdk.api import pfs

        from pachflow.hooks.pachyderm import PachydermHook
        from pachflow.links import persist_commit_link
        from pachflow.upload import plan_upload, push_files

        force = _truthy(self.force)
        items = plan_upload(self.source, self.dest)
        total = sum(i.size for i in items)
        self.log.info("Source %s: %d files, %d bytes", self.source, len(items), total)
        hook = PachydermHook(self.pachyderm_conn_id, project=self.project or None)
        client = hook.get_conn()
        repo = pfs.Repo(name=self.repo, type="user", project=pfs.Project(name=hook.project))
        if not hook.call(client.pfs.repo_exists, repo):
            if not self.create_repo:
                raise ValueError(f"repo {hook.project}/{self.repo} does not exist (create_repo=False)")
            hook.call(client.pfs.create_repo, repo=repo, description="raw data pushed by pachflow")
            self.log.info("Created repo %s/%s", hook.project, self.repo)
        branch = pfs.Branch(repo=repo, name=self.branch)
        description = f"pachflow: {len(items)} files from {self.source} (dag {context['dag'].dag_id}, run {context['run_id']})"
        result = push_files(
            client, branch, items, force=force, checksum=_truthy(self.checksum), description=description
        )
        self._ol = {"ns": f"pachyderm://{hook.endpoint.host}:{hook.endpoint.port}", "project": hook.project}
        if result.commit_id is None:
            raise AirflowSkipException(
                f"{hook.project}/{self.repo}@{self.branch} already has identical content for all "
                f"{len(items)} files from {self.source}; nothing to push (set force to push anyway)"
            )
        self.log.info(
            "Pushed %d changed files (%d unchanged, %d bytes) as commit %s",
            len(result.uploaded),
            len(result.unchanged),
            result.bytes_sent,
            result.commit_id,
        )
        self._ol["commit"] = result.commit_id
        persist_commit_link(context, hook, self.repo, result.commit_id)
        for asset in self.outlets or []:
            context["outlet_events"][asset].extra.update(
                {"commit_id": result.commit_id, "files": len(result.uploaded), "bytes": result.bytes_sent}
            )
        return result.commit_id

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from pachflow.openlineage import operator_lineage

        if not self._ol:
            return None
        name = f"{self._ol['project']}/{self.repo}@{self._ol.get('commit', self.branch)}"
        return operator_lineage(self._ol["ns"], outputs=[name])


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
