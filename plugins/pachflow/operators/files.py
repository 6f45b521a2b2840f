"""PachydermPutFilesOperator: push local files into one or several repos as ONE commit set."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from pachflow.exceptions import ConfigurationError, InvalidInputFile
from pachflow.hooks.unreachable import no_retry_when_unreachable
from pachflow.links import PachydermCommitLink
from pachflow.settings import as_bool


class PachydermPutFilesOperator(BaseOperator):
    """Upload files, directories or globs into ``repo@branch`` — or into several repos — in ONE commit set.

    Give either ``repo`` and ``source`` (one repo) or ``files`` (several repos, ``{repo: source}``).
    With several repos the commits are started in one Pachyderm transaction, so they share one
    commit-set id and every downstream pipeline runs ONE job on all the new data (a ``join`` of
    two input repos sees the new commits of both together). Repos whose content is already at the
    branch head are left out of the commit set; when nothing changed anywhere the task is skipped
    (no commit, so no pipeline job) unless ``force``. Like rsync, a file is taken as unchanged when
    its size and mtime match the manifest the previous push recorded on the head commit (each
    repo's commit carries its own manifest); otherwise content hashes are compared. A failed upload
    never leaves a partial commit that looks complete: every commit of the set is closed as failed
    and the set dropped, so the branch heads stay where they were.

    Returns the commit-set id (XCom ``return_value``; with one repo it is that repo's commit id),
    logs progress in bytes, and emits one Asset event per pushed repo for
    ``pachyderm://<project>/<repo>@<branch>`` with the commit id in its extra. With one repo and the
    project given to the task, that Asset is the task's outlet. Otherwise the outlet is the
    AssetAlias ``pachyderm/<dag_id>/<task_id>`` and the Assets are attached to it at run time: the
    project may come from the connection (known only then), and a repo left out of the commit set
    must get no event (Airflow emits one for every static outlet of a successful task).

    :param source: local path, directory or glob, or a list of them (templated). With ``repo``.
    :param repo: target repo, created when missing (templated). With ``source``.
    :param files: ``{repo: source}`` for several repos in one commit set; the keys are repo names
        (not templated), the values like ``source`` (templated). Excludes ``repo``/``source``.
    :param branch: target branch of every repo (templated).
    :param dest: directory in the repo(s) (templated).
    :param force: push every file even when the head already has the same content (templated).
    :param checksum: compare content hashes even when size and mtime match, like
        ``rsync --checksum`` (templated).
    :param create_repo: create missing repos (and a missing project); False makes them an error.
    :param project: Pachyderm project (templated); default: the connection's ``project`` extra,
        else ``default``.
    :param include: file-name pattern(s) (``fnmatch``, e.g. ``"*.csv"``) of the files to push from
        the sources; the others are left out and listed in the log. None: every file.
    :param expected_columns: column names every pushed file's CSV header must contain (extra
        columns are fine). Checked before anything is committed: a file without them is refused
        with its name and the reason, and nothing is pushed.
    :param validate: ``callable(local_path, repo_path) -> reason or None``, a further check of
        each file before anything is committed (a returned reason refuses the file).
    """

    template_fields: Sequence[str] = (
        "source",
        "repo",
        "files",
        "branch",
        "dest",
        "force",
        "checksum",
        "project",
        "include",
    )
    template_fields_renderers = {"files": "json"}
    ui_color = "#d4f0ff"
    operator_extra_links = (PachydermCommitLink(),)

    def __init__(
        self,
        *,
        source: str | Sequence[str] | None = None,
        repo: str | None = None,
        files: Mapping[str, str | Sequence[str]] | None = None,
        branch: str = "master",
        dest: str = "/",
        force: bool | str = False,
        checksum: bool | str = False,
        create_repo: bool = True,
        project: str | None = None,
        pachyderm_conn_id: str = "pachyderm_default",
        emit_asset: bool = True,
        include: str | Sequence[str] | None = None,
        expected_columns: Sequence[str] | None = None,
        validate: Callable[[Any, str], str | None] | None = None,
        **kwargs: Any,
    ) -> None:
        task = f"PachydermPutFilesOperator(task_id={kwargs.get('task_id')!r})"
        files = _check_targets(task, source, repo, files)
        wants_assets = emit_asset and "outlets" not in kwargs
        super().__init__(**kwargs)
        self.source = source
        self.repo = repo
        self.files = files
        self.branch = branch
        self.dest = dest
        self.force = force
        self.checksum = checksum
        self.create_repo = create_repo
        self.project = project
        self.pachyderm_conn_id = pachyderm_conn_id
        if isinstance(expected_columns, str):
            raise ConfigurationError(
                f"{task}: expected_columns= must be a list of column names, not a string"
            )
        self.include = include
        self.expected_columns = list(expected_columns) if expected_columns is not None else None
        self.validate = validate
        self._alias: str | None = None
        if wants_assets:
            self.outlets = self._static_outlets()
        self._ol: dict[str, Any] = {}

    def _static_outlets(self) -> list[Any]:
        """The Asset of the one repo when repo, branch and project are known now; else an AssetAlias."""
        from airflow.sdk import AssetAlias

        from pachflow.assets import pachyderm_asset

        repos = list(self.files) if self.files is not None else [self.repo]
        if any(not r or "{{" in r for r in repos) or "{{" in self.branch:
            return []
        if len(repos) == 1 and self.project and "{{" not in self.project:
            return [pachyderm_asset(repos[0], self.branch, self.project)]
        dag_id = self.dag_id if self.has_dag() else "-"
        self._alias = f"pachyderm/{dag_id}/{self.task_id}"
        return [AssetAlias(name=self._alias, group="pachyderm")]

    def _checked(self, repo: str, source: str | Sequence[str], project: str) -> list[Any]:
        """The files of ``source`` to push into ``repo``: filtered by ``include``, then validated."""
        from pachflow.input_checks import expected_columns_check, select, validate
        from pachflow.upload import plan_upload

        items, left_out = select(plan_upload(source, self.dest), self.include)
        if left_out:
            self.log.info(
                "Left out %d file(s) of %s not matching include=%r: %s",
                len(left_out),
                source,
                self.include,
                ", ".join(str(i.local) for i in left_out),
            )
        if not items:
            raise FileNotFoundError(f"source {source!r} has no file matching include={self.include!r}")
        checks = []
        if self.expected_columns:
            checks.append(expected_columns_check(self.expected_columns))
        if self.validate is not None:
            checks.append(self.validate)
        validate(items, checks, where=f"{project}/{repo}@{self.branch}")
        return items

    def _targets(self) -> dict[str, str | Sequence[str]]:
        if self.files is not None:
            return dict(self.files)
        return {str(self.repo): self.source}

    @no_retry_when_unreachable
    def execute(self, context: Context) -> str:
        from pachyderm_sdk.api import pfs

        from pachflow.hooks.pachyderm import PachydermHook
        from pachflow.hooks.unreachable import TASK_RETRY_SECONDS
        from pachflow.links import persist_commit_link
        from pachflow.openlineage import namespace
        from pachflow.projects import ensure_project
        from pachflow.upload import RepoUpload, push_commit_set

        targets = self._targets()
        hook = PachydermHook(
            self.pachyderm_conn_id, project=self.project or None, retry_for_seconds=TASK_RETRY_SECONDS
        )
        client = hook.get_conn()
        project = hook.project
        try:
            planned = {repo: self._checked(repo, source, project) for repo, source in targets.items()}
        except InvalidInputFile as err:  # the same files fail the same way on a retry
            raise AirflowFailException(str(err)) from err
        for repo, items in planned.items():
            self.log.info(
                "Source %s for %s/%s: %d files, %d bytes",
                targets[repo],
                project,
                repo,
                len(items),
                sum(i.size for i in items),
            )
        if hook.call(ensure_project, client, project, create=self.create_repo, setting="create_repo"):
            self.log.info("Created Pachyderm project %s", project)
        uploads = []
        run = f"dag {context['dag'].dag_id}, run {context['run_id']}"
        for repo, items in planned.items():
            ref = pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))
            if not hook.call(client.pfs.repo_exists, ref):
                if not self.create_repo:
                    raise ConfigurationError(
                        f"Pachyderm project {project!r} has no repo {repo!r} (create_repo=False)"
                    )
                hook.call(client.pfs.create_repo, repo=ref, description="data pushed by pachflow")
                self.log.info("Created repo %s/%s", project, repo)
            description = f"pachflow: {len(items)} files from {targets[repo]} ({run})"
            uploads.append(RepoUpload(pfs.Branch(repo=ref, name=self.branch), items, description))
        result = push_commit_set(
            client, uploads, force=as_bool("force", self.force), checksum=as_bool("checksum", self.checksum)
        )
        self._ol = {"ns": namespace(hook.endpoint.host, hook.endpoint.port), "project": project}
        where = ", ".join(f"{project}/{repo}@{self.branch}" for repo in targets)
        if result.commit_id is None:
            raise AirflowSkipException(
                f"{where} already hold identical content for every file "
                f"({sum(len(i) for i in planned.values())} files); nothing to push (set force to push anyway)"
            )
        per_repo = {repo: result.repos[f"{project}/{repo}@{self.branch}"] for repo in targets}
        pushed = {repo: r for repo, r in per_repo.items() if r.commit_id}
        self.log.info(
            "Pushed commit set %s: %s",
            result.commit_id,
            "; ".join(
                f"{repo}: {len(r.uploaded)} changed files ({len(r.unchanged)} unchanged, {r.bytes_sent} bytes)"
                for repo, r in pushed.items()
            ),
        )
        left_out = [repo for repo in targets if repo not in pushed]
        if left_out:
            self.log.info("Unchanged, so not in the commit set: %s", ", ".join(left_out))
        self._ol["commits"] = {repo: result.commit_id for repo in pushed}
        persist_commit_link(context, hook, next(iter(pushed)), result.commit_id, project=project)
        self._emit_assets(context, project, pushed)
        return result.commit_id

    def _emit_assets(self, context: Context, project: str, pushed: dict[str, Any]) -> None:
        from airflow.sdk import Asset, AssetAlias

        from pachflow.assets import pachyderm_asset

        for repo, r in pushed.items():
            extra = {"commit_id": r.commit_id, "files": len(r.uploaded), "bytes": r.bytes_sent}
            asset = pachyderm_asset(repo, self.branch, project)
            for outlet in self.outlets or []:
                if isinstance(outlet, Asset) and outlet.uri == asset.uri:
                    context["outlet_events"][outlet].extra.update(extra)
                elif isinstance(outlet, AssetAlias) and outlet.name == self._alias:
                    context["outlet_events"][outlet].add(asset, extra=extra)

    def openlineage_datasets(self) -> dict[str, list[Any]]:
        """Datasets of the last run: ``outputs`` = every pushed ``project/repo@branch`` at its new commit."""
        from pachflow.openlineage import BranchCommit

        commits = self._ol.get("commits") or {}
        return {
            "inputs": [],
            "outputs": [BranchCommit(self._ol["project"], r, self.branch, c) for r, c in commits.items()],
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from pachflow.openlineage import operator_lineage

        if not self._ol.get("commits"):
            return None
        return operator_lineage(self._ol["ns"], **self.openlineage_datasets())


def _check_targets(
    task: str,
    source: str | Sequence[str] | None,
    repo: str | None,
    files: Mapping[str, str | Sequence[str]] | None,
) -> dict[str, str | Sequence[str]] | None:
    """Parse-time check: ``files`` alone, or ``repo`` with ``source``; the error names the parameters."""
    if files is not None:
        if repo is not None or source is not None:
            given = " and ".join(f"{n}=" for n, v in (("repo", repo), ("source", source)) if v is not None)
            raise ConfigurationError(f"{task}: give either files= or repo=/source=, not files= and {given}")
        if not isinstance(files, Mapping) or not files:
            raise ConfigurationError(f"{task}: files= must be a non-empty mapping {{repo: source}}")
        for key, value in files.items():
            if not isinstance(key, str) or not key.strip():
                raise ConfigurationError(f"{task}: files= has a key {key!r} that is not a repo name")
            if not value:
                raise ConfigurationError(f"{task}: files[{key!r}] gives no source")
        return dict(files)
    missing = [n for n, v in (("repo", repo), ("source", source)) if not v]
    if missing:
        raise ConfigurationError(
            f"{task}: {' and '.join(m + '=' for m in missing)} missing: give repo= with source=, "
            "or files={repo: source}"
        )
    return None
