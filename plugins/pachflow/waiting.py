"""Blocking checks and waits on a Pachyderm commit and the job behind it.

Shared by the sensor (one check, then defer or poke) and the trigger (a server-side wait in a
thread). A pipeline's output commit in commit set S belongs to job ``<pipeline>@S``; the wait
ends as soon as that job is terminal, so failures surface at once instead of after a poke.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pachflow.exceptions import CommitNotFound, PachydermNotFound

if TYPE_CHECKING:
    from pachyderm_sdk import Client

FAILED_JOB_STATES = ("JOB_FAILURE", "JOB_KILLED", "JOB_UNRUNNABLE")
RUNNING, SUCCESS, FAILED, TIMEOUT, ERROR = "running", "success", "failed", "timeout", "error"
STATUSES = (RUNNING, SUCCESS, FAILED, TIMEOUT, ERROR)


@dataclass(frozen=True)
class CommitTarget:
    """The commit to wait for (``project/repo@commit_id``) and whether a pipeline produces it.

    ``commit_id`` is the commit-set id too: every commit of a set has the set's id.
    """

    project: str
    repo: str
    commit_id: str
    pipeline: bool

    @property
    def uri(self) -> str:
        return f"{self.project}/{self.repo}@{self.commit_id}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CommitTarget:
        return cls(
            project=str(data["project"]),
            repo=str(data["repo"]),
            commit_id=str(data["commit_id"]),
            pipeline=bool(data["pipeline"]),
        )


@dataclass(frozen=True)
class WaitEvent:
    """Where a wait on a :class:`CommitTarget` stands, or how it ended.

    ``status``: ``running`` (not finished yet), ``success``, ``failed`` (the job failed, was killed
    or is unrunnable, or the commit has its ``error`` set: ``reason`` and the job's ``log_tail``
    say why), ``timeout`` or ``error`` (the wait itself broke: ``message``). ``job`` is the job
    summary (:func:`job_summary`) when a pipeline produces the commit. The commit id lives only in
    ``target``. ``to_dict``/``from_dict`` give the JSON form a TriggerEvent carries.
    """

    status: str
    target: CommitTarget
    job: dict[str, Any] | None = None
    reason: str = ""
    log_tail: tuple[str, ...] = field(default=())
    message: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"WaitEvent status {self.status!r}: expected one of {', '.join(STATUSES)}")

    @property
    def done(self) -> bool:
        return self.status != RUNNING

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "target": self.target.to_dict(),
            "job": dict(self.job) if self.job else None,
            "reason": self.reason,
            "log_tail": list(self.log_tail),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WaitEvent:
        return cls(
            status=data["status"],
            target=CommitTarget.from_dict(data["target"]),
            job=dict(data["job"]) if data.get("job") else None,
            reason=data.get("reason") or "",
            log_tail=tuple(data.get("log_tail") or ()),
            message=data.get("message") or "",
        )

    def with_log_tail(self, lines: list[str]) -> WaitEvent:
        return replace(self, log_tail=tuple(lines))


def _commit(project: str, repo: str, commit_id: str = "", branch: str | None = None):
    from pachyderm_sdk.api import pfs

    r = pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))
    if branch:
        return pfs.Commit(repo=r, id=commit_id, branch=pfs.Branch(repo=r, name=branch))
    return pfs.Commit(repo=r, id=commit_id)


def is_set(timestamp: Any) -> bool:
    """betterproto turns an unset Timestamp into the epoch, not None."""
    return timestamp is not None and timestamp.timestamp() > 0


def require_repo(client: Client, project: str, repo: str) -> None:
    """Raise :class:`PachydermNotFound` when ``project`` or its repo ``repo`` does not exist.

    The message names the project and repo, and the projects that do have a repo of that name.
    """
    from pachyderm_sdk.api import pfs

    if not client.pfs.project_exists(pfs.Project(name=project)):
        raise PachydermNotFound(f"Pachyderm project {project!r} does not exist (looking for repo {repo!r})")
    if client.pfs.repo_exists(pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))):
        return
    elsewhere = sorted(
        {info.repo.project.name for info in client.pfs.list_repo(type="user") if info.repo.name == repo}
    )
    hint = f"; a repo {repo!r} exists in project {', '.join(map(repr, elsewhere))}" if elsewhere else ""
    raise PachydermNotFound(f"Pachyderm project {project!r} has no repo {repo!r}{hint}")


def resolve_target(
    client: Client, *, project: str, repo: str, commit_set: str | None, branch: str = "master"
) -> CommitTarget:
    """Find the commit of ``repo`` in ``commit_set`` (or the head of ``branch``).

    A missing project or repo is :class:`PachydermNotFound`; an existing repo without a commit in
    the set (or without the branch) is :class:`CommitNotFound`.
    """
    from pachyderm_sdk.api import pfs

    require_repo(client, project, repo)
    if commit_set:
        commit = _commit(project, repo, commit_set)
        if not client.pfs.commit_exists(commit):
            raise CommitNotFound(f"{project}/{repo} has no commit in commit set {commit_set}")
        commit_id = commit_set
    else:
        b = pfs.Branch(repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)), name=branch)
        if not client.pfs.branch_exists(b):
            raise CommitNotFound(f"branch {project}/{repo}@{branch} does not exist")
        commit_id = client.pfs.inspect_branch(branch=b).head.id
    is_pipeline = pipeline_exists(client, project, repo)
    return CommitTarget(project=project, repo=repo, commit_id=commit_id, pipeline=is_pipeline)


def commit_set_exists(client: Client, commit_set: str) -> bool:
    """True when the commit set has at least one commit (e.g. the pushed input commit).

    Pachyderm creates every downstream commit of a commit set together with it, so once the set
    exists a repo without a commit in it will never get one: no need to wait for it to appear.
    """
    import grpc
    from pachyderm_sdk.api import pfs

    try:
        return any(True for _ in client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=commit_set)))
    except grpc.RpcError as err:
        if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            return False
        raise


def pipeline_exists(client: Client, project: str, name: str) -> bool:
    """True when ``name`` is a pipeline (False also for servers without the PPS API)."""
    import grpc
    from pachyderm_sdk.api import pfs, pps

    try:
        return client.pps.pipeline_exists(pps.Pipeline(name=name, project=pfs.Project(name=project)))
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            return False
        raise


def _job(target: CommitTarget):
    from pachyderm_sdk.api import pfs, pps

    return pps.Job(
        pipeline=pps.Pipeline(name=target.repo, project=pfs.Project(name=target.project)), id=target.commit_id
    )


def job_summary(info: Any) -> dict[str, Any]:
    """The fields of a JobInfo worth logging and passing on."""
    from pachyderm_sdk.api import pps

    try:
        state = pps.JobState(int(info.state)).name
    except ValueError:
        state = str(info.state)
    return {
        "state": state,
        "reason": info.reason or "",
        "data_total": int(info.data_total),
        "data_processed": int(info.data_processed),
        "data_skipped": int(info.data_skipped),
        "data_failed": int(info.data_failed),
        "data_recovered": int(info.data_recovered),
    }


def progress_line(target: CommitTarget, job: dict[str, Any]) -> str:
    done = job["data_processed"] + job["data_skipped"] + job["data_failed"] + job["data_recovered"]
    return (
        f"{target.uri}: job {job['state']}, datums {done}/{job['data_total']} "
        f"(processed {job['data_processed']}, skipped {job['data_skipped']}, failed {job['data_failed']})"
    )


def check(client: Client, target: CommitTarget) -> WaitEvent:
    """One non-blocking look: a ``running`` event, or the final one."""
    job = None
    if target.pipeline:
        job = job_summary(client.pps.inspect_job(job=_job(target)))
        if job["state"] in FAILED_JOB_STATES:
            return outcome(client, target, job)
        if job["state"] != "JOB_SUCCESS":
            return WaitEvent(RUNNING, target, job)
    info = client.pfs.inspect_commit(commit=_commit(target.project, target.repo, target.commit_id))
    if not is_set(info.finished):
        return WaitEvent(RUNNING, target, job)
    return outcome(client, target, job, commit_error=info.error)


def wait(client: Client, target: CommitTarget) -> WaitEvent:
    """Block server-side until the job is terminal and the commit finished; return the outcome."""
    from pachyderm_sdk.api import pfs

    job = None
    if target.pipeline:
        job = job_summary(client.pps.inspect_job(job=_job(target), wait=True))
        if job["state"] in FAILED_JOB_STATES:
            return outcome(client, target, job)
    info = client.pfs.inspect_commit(
        commit=_commit(target.project, target.repo, target.commit_id), wait=pfs.CommitState.FINISHED
    )
    return outcome(client, target, job, commit_error=info.error)


def outcome(
    client: Client,
    target: CommitTarget,
    job: dict[str, Any] | None,
    *,
    commit_error: str = "",
    tail: int = 30,
) -> WaitEvent:
    """Build the final event: success, or failed with the reason and the job's log tail."""
    failed = bool(commit_error) or bool(job and job["state"] in FAILED_JOB_STATES)
    if not failed:
        return WaitEvent(SUCCESS, target, job)
    return WaitEvent(
        FAILED,
        target,
        job,
        reason=(job or {}).get("reason") or commit_error or "unknown",
        log_tail=tuple(log_tail(client, target, tail)) if target.pipeline else (),
    )


def log_tail(client: Client, target: CommitTarget, lines: int = 30) -> list[str]:
    """The last ``lines`` log messages of the job (best effort: a failure to read logs is reported inline)."""
    try:
        messages = list(client.pps.get_logs(job=_job(target), tail=lines))
    except Exception as err:  # logs are a diagnostic aid; never hide the job failure behind them
        return [f"(could not read job logs: {err})"]
    out = []
    for msg in messages[-lines:]:
        where = f"datum {msg.datum_id[:12]}" if msg.datum_id else ("master" if msg.master else "worker")
        out.append(f"[{where}] {msg.message.rstrip()}")
    return out


def new_log_lines(lines: Sequence[str], reason: str) -> list[str]:
    """The log-tail lines that add to ``reason``: a line whose message the reason already holds, or
    that an earlier line said (a retried datum logs the same error again), is dropped."""
    seen: set[str] = set()
    out = []
    for line in lines:
        message = line.split("] ", 1)[1] if line.startswith("[") and "] " in line else line
        message = message.strip()
        if not message or message in seen or message in reason:
            continue
        seen.add(message)
        out.append(line)
    return out


def poll_until(client: Client, target: CommitTarget, *, timeout: float, interval: float = 0.5) -> WaitEvent:
    """Poll :func:`check` (for servers or tests where a blocking wait is unwanted)."""
    deadline = time.monotonic() + timeout
    while True:
        event = check(client, target)
        if event.done or time.monotonic() >= deadline:
            return event
        time.sleep(interval)
