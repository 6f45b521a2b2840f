"""PachydermCommitTrigger: wait server-side for a commit (and the job behind it) to finish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from pachflow.waiting import ERROR, TIMEOUT, CommitTarget, WaitEvent

WAIT_RETRY_SECONDS = 300.0  # how long a wait keeps retrying while pachd is unreachable


class PachydermCommitTrigger(BaseTrigger):
    """Fire once ``project/repo@commit_id`` is finished, or its job failed, or the deadline passed.

    The wait is a blocking ``InspectJob(wait=True)`` / ``InspectCommit(wait=FINISHED)`` in a thread
    on its own gRPC channel (closed on deadline or cancel, which ends the call). Meanwhile the
    job's datum progress is logged every ``progress_interval`` seconds. The event payload is a
    :class:`pachflow.waiting.WaitEvent` as a dict (``WaitEvent.to_dict``): everything the sensor
    needs to resume (``airflow dags test`` drops ``defer(kwargs=...)``).

    :param timeout_s: own deadline; ``airflow dags test`` ignores the defer timeout.
    """

    def __init__(
        self,
        *,
        repo: str,
        commit_id: str,
        project: str = "default",
        pipeline: bool = True,
        pachyderm_conn_id: str = "pachyderm_default",
        timeout_s: float | None = None,
        progress_interval: float = 10.0,
        log_tail_lines: int = 30,
    ) -> None:
        super().__init__()
        self.repo = repo
        self.commit_id = commit_id
        self.project = project
        self.pipeline = pipeline
        self.pachyderm_conn_id = pachyderm_conn_id
        self.timeout_s = timeout_s
        self.progress_interval = progress_interval
        self.log_tail_lines = log_tail_lines

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "pachflow.triggers.pachyderm.PachydermCommitTrigger",
            {
                "repo": self.repo,
                "commit_id": self.commit_id,
                "project": self.project,
                "pipeline": self.pipeline,
                "pachyderm_conn_id": self.pachyderm_conn_id,
                "timeout_s": self.timeout_s,
                "progress_interval": self.progress_interval,
                "log_tail_lines": self.log_tail_lines,
            },
        )

    def _target(self) -> CommitTarget:
        return CommitTarget(
            project=self.project, repo=self.repo, commit_id=self.commit_id, pipeline=self.pipeline
        )

    def _hook(self):
        from pachflow.hooks.pachyderm import PachydermHook

        # A wait can outlast a pachd restart (pachd-lite reruns unfinished jobs after one): keep
        # retrying for minutes, not a handful of attempts — but never past the trigger's deadline.
        retry_for = WAIT_RETRY_SECONDS if self.timeout_s is None else min(WAIT_RETRY_SECONDS, self.timeout_s)
        return PachydermHook(self.pachyderm_conn_id, project=self.project, retry_for_seconds=retry_for)

    def _wait(self, hook: Any) -> WaitEvent:
        from pachflow import waiting

        event = hook.call(waiting.wait, hook.client, self._target())
        if event.status == waiting.FAILED and self.pipeline:
            event = event.with_log_tail(waiting.log_tail(hook.client, self._target(), self.log_tail_lines))
        return event

    def _progress(self, hook: Any) -> str | None:
        from pachflow import waiting

        if not self.pipeline:
            return None
        event = waiting.check(hook.client, self._target())
        return waiting.progress_line(self._target(), event.job) if event.job else None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        target = self._target()
        deadline = time.monotonic() + self.timeout_s if self.timeout_s else None
        waiter = progress = None
        try:
            waiter = await asyncio.to_thread(self._hook)
            progress = await asyncio.to_thread(self._hook)
            await asyncio.to_thread(waiter.check_connection)
            self.log.info("Waiting server-side for %s (deadline %s s)", target.uri, self.timeout_s)
            wait_task = asyncio.ensure_future(asyncio.to_thread(self._wait, waiter))
            last_line = None
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                step = self.progress_interval if remaining is None else min(self.progress_interval, remaining)
                done, _ = await asyncio.wait({wait_task}, timeout=step)
                if done:
                    event = wait_task.result()
                    self.log.info("%s: %s", target.uri, event.status)
                    yield TriggerEvent(event.to_dict())
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    message = f"{target.uri} not finished after {self.timeout_s} s"
                    yield TriggerEvent(WaitEvent(TIMEOUT, target, message=message).to_dict())
                    return
                try:
                    line = await asyncio.to_thread(self._progress, progress)
                except Exception as err:  # progress is informative only
                    line = f"{target.uri}: progress unavailable ({err})"
                if line and line != last_line:
                    self.log.info("%s", line)
                    last_line = line
        except Exception as err:
            yield TriggerEvent(WaitEvent(ERROR, target, message=f"{type(err).__name__}: {err}").to_dict())
        finally:
            for hook in (waiter, progress):
                if hook is not None:
                    hook.close()  # ends a still-blocked wait call in its thread
