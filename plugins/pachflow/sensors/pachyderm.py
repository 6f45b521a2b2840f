"""PachydermCommitSensor: wait for a repo's commit in a commit set (or a branch head) to finish."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from pachflow.exceptions import PachydermNotFound
from pachflow.hooks.unreachable import no_retry_when_unreachable
from pachflow.links import PachydermCommitLink
from pachflow.triggers.pachyderm import PachydermCommitTrigger
from pachflow.waiting import FAILED, SUCCESS, CommitTarget, WaitEvent

EMPTY = ("", "None", "none", "null")


class PachydermCommitSensor(BaseSensorOperator):
    """Wait until ``repo``'s commit in ``commit_set`` (or the head of ``branch``) is finished.

    When ``repo`` is a pipeline's output, the job behind the commit is followed: the task fails
    within seconds when that job fails, is killed or is unrunnable, with the job's reason and
    the tail of its logs in the task log. Deferrable by default; the trigger waits server-side.

    :param repo: repo to watch (templated).
    A ``repo`` or ``project`` that does not exist fails the task, naming them (a wrong project on
    the connection must not look like "nothing to do"). The task is skipped only when the
    commit set exists and does not reach ``repo``, or when nothing new upstream gave a commit set
    (an empty ``commit_set``); a commit set that never appears fails the task too.

    Returns (XCom) ``{"repo", "project", "commit_id", "commit_set", "job"}``: ``commit_set`` equals
    ``commit_id`` (a commit's id is its commit set's), kept for templates such as
    ``.get('commit_set')``; ``job`` is the job summary or None for a plain repo.

    :param commit_set: global commit-set id (templated). ``None`` waits for the branch head;
        an empty rendered value (nothing new upstream) skips the task.
    :param branch: branch whose head to wait for when ``commit_set`` is ``None`` (templated).
    :param project: Pachyderm project; default: the connection's project (templated).
    :param missing_grace: seconds to wait for the commit set (or, without one, the branch) to
        appear; still missing after that, the task fails. Once the commit set exists, a repo
        without a commit in it is skipped at once.
    :param progress_interval: seconds between datum-progress log lines.
    :param report_rejects: directory of per-file reject summaries in the finished commit (e.g.
        ``"/rejects"``; the contract is in :mod:`pachflow.rejects`). When given, the task log shows
        the rejected-row count, the first reasons and where the rejected rows are; the result gets
        ``rejected_rows``; the commit's metadata gets ``pachflow.rejected_rows`` (lineage recorded
        downstream then carries it into the lineage record and the MLflow run). None: not read.
    :param deferrable: defer to the triggerer instead of poking. Default True; set
        ``[pachflow] default_deferrable = False`` (``AIRFLOW__PACHFLOW__DEFAULT_DEFERRABLE``) to poke
        instead where no triggerer runs. (Airflow's own ``[operators] default_deferrable`` defaults
        to False, which the issue asks not to inherit.)
    """

    template_fields: Sequence[str] = ("repo", "commit_set", "branch", "project")
    ui_color = "#7c4dff"
    operator_extra_links = (PachydermCommitLink(),)

    def __init__(
        self,
        *,
        repo: str,
        commit_set: str | None = None,
        branch: str = "master",
        project: str | None = None,
        pachyderm_conn_id: str = "pachyderm_default",
        missing_grace: float = 10.0,
        progress_interval: float = 10.0,
        log_tail_lines: int = 30,
        report_rejects: str | None = None,
        deferrable: bool = conf.getboolean("pachflow", "default_deferrable", fallback=True),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 5.0)
        kwargs.setdefault("timeout", 6 * 3600)
        super().__init__(**kwargs)
        self.repo = repo
        self.commit_set = commit_set
        self.branch = branch
        self.project = project
        self.pachyderm_conn_id = pachyderm_conn_id
        self.missing_grace = missing_grace
        self.progress_interval = progress_interval
        self.log_tail_lines = log_tail_lines
        self.report_rejects = report_rejects
        self.deferrable = deferrable
        self._ol: dict[str, Any] = {}

    # -- helpers ------------------------------------------------------------------------------
    def _hook(self):
        from pachflow.hooks.pachyderm import PachydermHook
        from pachflow.hooks.unreachable import TASK_RETRY_SECONDS

        return PachydermHook(
            self.pachyderm_conn_id, project=self.project or None, retry_for_seconds=TASK_RETRY_SECONDS
        )

    def _resolve(self, hook: Any) -> CommitTarget:
        from pachflow.waiting import CommitNotFound, commit_set_exists, require_repo, resolve_target

        commit_set = None if self.commit_set is None else str(self.commit_set).strip()
        if commit_set is not None and commit_set in EMPTY:
            raise AirflowSkipException(f"No commit set to wait for on {self.repo}: nothing new upstream")
        try:
            hook.call(require_repo, hook.client, hook.project, self.repo)
        except PachydermNotFound as err:
            origin = hook.endpoint.project_from or (
                f"none: neither the task nor connection {self.pachyderm_conn_id!r} sets a project, so pachd's "
                "default applies"
            )
            raise PachydermNotFound(f"{err} (project set by {origin})") from err
        deadline = time.monotonic() + self.missing_grace
        while True:
            try:
                return hook.call(
                    resolve_target,
                    hook.client,
                    project=hook.project,
                    repo=self.repo,
                    commit_set=commit_set,
                    branch=self.branch,
                )
            except CommitNotFound as err:
                if commit_set and hook.call(commit_set_exists, hook.client, commit_set):
                    raise AirflowSkipException(f"{err}: this change does not reach {self.repo}") from err
                if time.monotonic() >= deadline:
                    if commit_set:
                        raise PachydermNotFound(
                            f"commit set {commit_set} does not exist (waited {self.missing_grace:g} s for it)"
                        ) from err
                    raise
                time.sleep(min(1.0, self.missing_grace))

    def _finish(self, context: Context, event: WaitEvent) -> dict[str, Any]:
        """Turn a final check/trigger event into the task result, or fail with the job's details."""
        from pachflow.links import persist_commit_link
        from pachflow.openlineage import namespace

        target, job = event.target, event.job
        if event.status == SUCCESS:
            if job:
                self.log.info(
                    "%s finished: job %s, %s/%s datums processed, %s skipped",
                    target.uri,
                    job["state"],
                    job["data_processed"],
                    job["data_total"],
                    job["data_skipped"],
                )
            else:
                self.log.info("%s finished", target.uri)
            hook = self._hook()
            persist_commit_link(context, hook, target.repo, target.commit_id, project=target.project)
            self._ol = {"ns": namespace(hook.endpoint.host, hook.endpoint.port), "target": target}
            result = {
                "repo": target.repo,
                "project": target.project,
                "commit_id": target.commit_id,
                "commit_set": target.commit_id,
                "job": job,
            }
            if self.report_rejects:
                result["rejected_rows"] = self._report_rejects(hook, target)
            return result
        if event.status == FAILED:
            from pachflow.waiting import new_log_lines

            # The reason (in the exception below) already quotes the failed datum's last lines:
            # show only what the job's log adds, each line once.
            extra = new_log_lines(event.log_tail, event.reason)
            if extra:
                self.log.error("More log lines of the job behind %s:\n%s", target.uri, "\n".join(extra))
            # A terminal job does not change on retry: fail the task without retries.
            raise AirflowFailException(
                f"Pachyderm job behind {target.uri} failed ({(job or {}).get('state', 'commit error')}): "
                f"{event.reason}"
            )
        raise AirflowException(f"Waiting for {target.uri} ended with {event.status}: {event.message}")

    def _report_rejects(self, hook: Any, target: CommitTarget) -> int | None:
        """Log the commit's reject summaries and record their total on the commit; the total, or None."""
        from pachflow.rejects import describe, read_rejects, record_on_commit

        report = hook.call(
            read_rejects, hook.client, target.project, target.repo, target.commit_id, self.report_rejects
        )
        lines = describe(report)
        if report.rejected:
            self.log.warning("Rejected rows:\n%s", "\n".join(lines))
        else:
            self.log.info("%s", "\n".join(lines))
        if not report.files:
            return None
        hook.call(
            record_on_commit, hook.client, target.project, target.repo, target.commit_id, report.rejected
        )
        return report.rejected

    # -- sensor protocol ----------------------------------------------------------------------
    def poke(self, context: Context) -> PokeReturnValue:
        from pachflow import waiting

        hook = self._hook()
        target = self._resolve(hook)
        event = hook.call(waiting.check, hook.client, target)
        if not event.done:
            if event.job:
                self.log.info("%s", waiting.progress_line(target, event.job))
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, event))

    @no_retry_when_unreachable
    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from pachflow import waiting

        hook = self._hook()
        hook.check_connection()
        target = self._resolve(hook)
        event = hook.call(waiting.check, hook.client, target)
        if event.done:
            return self._finish(context, event)
        if event.job:
            self.log.info("%s", waiting.progress_line(target, event.job))
        self.log.info("Deferring: the triggerer waits server-side for %s", target.uri)
        self.defer(
            trigger=PachydermCommitTrigger(
                repo=target.repo,
                commit_id=target.commit_id,
                project=target.project,
                pipeline=target.pipeline,
                pachyderm_conn_id=self.pachyderm_conn_id,
                timeout_s=float(self.timeout),
                progress_interval=self.progress_interval,
                log_tail_lines=self.log_tail_lines,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def openlineage_datasets(self) -> dict[str, list[Any]]:
        """Datasets of the last run: ``inputs`` = the finished commit, on ``branch``."""
        from pachflow.openlineage import BranchCommit

        target = self._ol.get("target")
        return {
            "inputs": [BranchCommit(target.project, target.repo, self.branch, target.commit_id)]
            if target
            else [],
            "outputs": [],
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from pachflow.openlineage import operator_lineage

        if not self._ol:
            return None
        return operator_lineage(self._ol["ns"], **self.openlineage_datasets())

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired; everything needed is in ``event``."""
        if not event:
            raise AirflowException("Pachyderm commit trigger ended without an event")
        return self._finish(context, WaitEvent.from_dict(event))
