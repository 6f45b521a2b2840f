"""One job's run, from STARTING to a terminal state (the scheduler starts one per job).

A job waits in STARTING for its input commits to finish (an errored input makes it
UNRUNNABLE), computes its datums, skips those whose (id, hash) were processed by the base
job (the latest successful job of the pipeline) and carries their outputs forward, runs the
others in sandboxes on worker threads (parallelism_spec capped by the server's limit; one
user process per datum, or one per worker with datum batching), then builds the output commit
as the union of every datum's outputs — two datums writing one path fail the job with pachd's
message.

A job succeeds only if every datum has a result (processed, skipped or recovered): an error
in pachd-lite's own datum handling (placing an input, collecting an output) fails that datum
with a reason naming it and the file, and the job with it; a worker thread never dies silently.
As pachd's worker, a failed datum does not stop the others: the job fails once all have run
(pachd_lite.pps.job_finish writes the output and meta commits and ends the job). A job past
its ``job_timeout`` is stopped (JOB_KILLED, as pachd), even if a datum failed before; only a
server shutdown leaves a job unfinished, to start over on restart.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pachyderm_sdk.api import pps

from pachd_lite.errors import NotFound
from pachd_lite.pfs import files
from pachd_lite.pps import jobs
from pachd_lite.pps import secrets as pipeline_secrets
from pachd_lite.pps.datum_meta import InputFiles
from pachd_lite.pps.datum_sandbox import DatumSandbox
from pachd_lite.pps.datums import Datum, Match, PfsInputRef, compute_datums, datum_env
from pachd_lite.pps.job_finish import finish_job
from pachd_lite.pps.job_results import (
    DATUM_RECOVERED,
    DATUM_SKIPPED,
    DATUM_SUCCESS,
    DatumResult,
    JobResults,
)
from pachd_lite.pps.outputs import OutputError, collect_outputs
from pachd_lite.pps.pipelines import PipelineRecord, find_pipeline
from pachd_lite.pps.placement import InputPlacementError, Materialiser
from pachd_lite.pps.runner import run_err_cmd, run_transform
from pachd_lite.pps.user_env import job_env
from pachd_lite.pps.worker_log import JobLog
from pachd_lite.pps.worker_service import DatumState as BatchState
from pachd_lite.pps.worker_service import run_batched

if TYPE_CHECKING:
    from pachd_lite.pps.scheduler import Scheduler

log = logging.getLogger("pachd_lite.pps")

# How long a job waits for a missing pipeline secret before failing (pachd waits indefinitely).
SECRET_WAIT_S = float(os.environ.get("PACHD_LITE_SECRET_WAIT_S", "30"))
KILL_POLL = 0.3
# pachd's words (worker/pipeline/transform/registry.go): a job past job_timeout is stopped (JOB_KILLED)
JOB_TIMED_OUT = " jobtimed out"


class JobStopped(Exception):
    """The job was killed (StopJob, pipeline update/delete, job_timeout) or the server is stopping."""


class JobRunner:
    """Runs one job from STARTING to a terminal state."""

    def __init__(self, scheduler: Scheduler, job: jobs.JobRecord) -> None:
        self.s = scheduler
        self.ctx = scheduler.ctx
        self.job = job
        self.cancel = threading.Event()
        self.worker_log = JobLog(scheduler.logs, job.project, job.pipeline, job.id)
        self.results = JobResults(scheduler.ctx, job, self.cancel)
        self._sandboxes: dict[int, DatumSandbox] = {}  # per worker index

    def master_log(self, message: str) -> None:
        self.worker_log.master(message)

    # --- state checks ------------------------------------------------------------------------
    def _current(self) -> jobs.JobRecord:
        with self.ctx.db.read() as conn:
            job = jobs.find_job(conn, self.job.project, self.job.pipeline, self.job.id)
        if job is None or job.state == jobs.KILLED:
            self.cancel.set()
            raise JobStopped
        return job

    def run(self) -> None:
        try:
            if self._starting():
                self._running()
        except JobStopped:
            self.master_log("job stopped")
        except Exception as exc:  # the job fails, the server goes on
            log.exception("job %s failed inside pachd-lite", self.job)
            try:
                with self.ctx.db.tx() as conn:
                    job = jobs.find_job(conn, self.job.project, self.job.pipeline, self.job.id)
                    if job is not None and not job.terminal:
                        jobs.end_job(self.ctx, conn, job, jobs.FAILURE, f"pachd-lite internal error: {exc}")
            except Exception:
                log.exception("could not record the failure of job %s", self.job)
        finally:
            self.s.logs.flush()
            shutil.rmtree(self.s.sandbox_root / self.job.id / self.job.pipeline, ignore_errors=True)

    def _starting(self) -> bool:
        """Wait for the input commits; False if the job ended (UNRUNNABLE)."""
        with self.ctx.db.tx() as conn:
            job = jobs.require_job(conn, self.job.project, self.job.pipeline, self.job.id)
            if job.terminal:
                return False
            jobs.set_state(conn, job, jobs.STARTING)
        while not self.s.stopping:
            version = self.ctx.db.version
            self._current()
            with self.ctx.db.read() as conn:
                inputs = jobs.input_commit_rows(conn, self.job)
            failed = sorted({r["repo_name"] for r in inputs if r["finished"] is not None and r["error"]})
            if failed:
                reason = "unrunnable because the following upstream pipelines failed: " + ", ".join(failed)
                with self.ctx.db.tx() as conn:
                    job = jobs.require_job(conn, self.job.project, self.job.pipeline, self.job.id)
                    if not job.terminal:
                        jobs.end_job(self.ctx, conn, job, jobs.UNRUNNABLE, reason)
                self.master_log(reason)
                return False
            if all(r["finished"] is not None for r in inputs):
                return True
            self.ctx.db.wait_for_change(version, 1.0)
        raise JobStopped

    # --- RUNNING -----------------------------------------------------------------------------
    def _running(self) -> None:
        with self.ctx.db.tx() as conn:
            job = jobs.require_job(conn, self.job.project, self.job.pipeline, self.job.id)
            if job.terminal:
                return
            jobs.set_state(conn, job, jobs.RUNNING, started=time.time())
            record = find_pipeline(conn, job.project, job.pipeline, job.pipeline_version) or find_pipeline(
                conn, job.project, job.pipeline
            )
            inputs = jobs.input_commit_rows(conn, job)
            snaps = {r["id"]: files.snapshot_of_row(conn, r) for r in inputs}
        spec = record.spec
        datums = self._compute_datums(record, inputs, snaps)
        base = self._base_job(spec)
        base_datums = self._load_base(base) if base is not None else {}
        todo: list[Datum] = []
        for d in datums:
            prev = base_datums.get(d.id)
            if prev is not None and prev[0] == d.hash and prev[1] in (DATUM_SUCCESS, DATUM_SKIPPED):
                self.results.record(DatumResult(d, DATUM_SKIPPED, origin_job=base.id))  # type: ignore[union-attr]
            else:
                todo.append(d)
        with self.ctx.db.tx() as conn:
            jobs.set_state(conn, self.job, jobs.RUNNING, data_total=len(datums))
        self.master_log(
            f"job started: {len(datums)} datum(s), {len(datums) - len(todo)} skipped (base job "
            f"{base.id if base else 'none'})"
        )
        workers = max(1, min(int(spec.parallelism_spec.constant or 1), self.s.cap))
        secret_env = self._secret_env(spec)
        if secret_env is None:
            return
        env = job_env(
            pipeline_name=record.name,
            project_name=record.project,
            job_id=self.job.id,
            output_commit_id=self.job.id,
            spec_commit_id=record.spec_commit_set,
            transform_env={**spec.transform.env, **secret_env},
            pachd_address=self.s.pachd_address,
            auth_token=self.s.auth_token,
        )
        resolver = Materialiser(self.ctx, inputs, snaps)
        done = threading.Event()
        job_timeout = spec.job_timeout.total_seconds() if spec.job_timeout else 0.0
        watcher = threading.Thread(target=self._watch_for_kill, args=(done, job_timeout), daemon=True)
        watcher.start()
        try:
            if spec.transform.datum_batching:
                self._run_batched(spec, env, todo, workers, resolver)
            else:
                self._run_parallel(spec, env, todo, workers, resolver)
        finally:
            done.set()
        self.results.flush(force=True)
        self._current()  # JobStopped if it was killed (a timed-out job is killed too): it ended
        if self.cancel.is_set():
            raise JobStopped  # server shutting down: the job stays unfinished and reruns on restart
        missing = self.results.missing(datums)
        if missing:  # a job succeeds only if every datum was processed, skipped or recovered
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            self._end(jobs.FAILURE, f"{len(missing)} datum(s) never ran: {shown}")
            return
        # as pachd: the other datums ran on; the job fails after them, naming the first failed datum
        first = self.results.failure
        failure = f"datum {first[0].id} failed: {first[1]}".rstrip() if first else ""
        self.s.logs.flush()
        reason = finish_job(self.ctx, self.job, InputFiles(inputs, snaps), failure)
        if reason is None:  # killed or deleted after its last datum
            raise JobStopped
        self.master_log(reason or "job succeeded")

    def _compute_datums(self, record: PipelineRecord, inputs, snaps) -> list[Datum]:
        def commit_row(ref: PfsInputRef):
            candidates = [
                r for r in inputs if r["repo_project"] == ref.project and r["repo_name"] == ref.repo
                and r["repo_type"] == (ref.repo_type or "user")
            ]  # fmt: skip
            for r in candidates:
                if r["branch_name"] == ref.branch:
                    return r
            if candidates:
                return candidates[0]
            raise RuntimeError(f"input {ref.project}/{ref.repo}@{ref.branch} has no commit in job {self.job}")

        def list_matches(ref: PfsInputRef, glob: str) -> list[Match]:
            snap = snaps[commit_row(ref)["id"]]
            return [
                Match(path=i.path, hash=i.hash.hex(), is_dir=i.is_dir, size=i.size_bytes)
                for i in files.glob_snapshot(snap, glob)
            ]

        return compute_datums(
            record.spec.input,
            list_matches,
            record.salt,
            commit_of=lambda ref: commit_row(ref)["commit_set"],
            project=record.project,
        )

    def _base_job(self, spec: pps.CreatePipelineRequest) -> jobs.JobRecord | None:
        if spec.reprocess_spec == "every_job" or spec.s3_out:
            return None
        with self.ctx.db.read() as conn:
            row = conn.execute(
                "SELECT * FROM jobs WHERE project = ? AND pipeline = ? AND state = ? AND seq < ? "
                "ORDER BY seq DESC LIMIT 1",
                (self.job.project, self.job.pipeline, jobs.SUCCESS, self.job.seq),
            ).fetchone()
        return jobs._record(row) if row is not None else None

    def _load_base(self, base: jobs.JobRecord) -> dict[str, tuple[str, int]]:
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                "SELECT datum_id, hash, state FROM datums WHERE project = ? AND pipeline = ? AND job_id = ?",
                (base.project, base.pipeline, base.id),
            ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    # --- datum execution ---------------------------------------------------------------------
    def _sandbox(self, name: str) -> Path:
        path = self.s.sandbox_root / self.job.id / self.job.pipeline / name
        shutil.rmtree(path, ignore_errors=True)
        self._prepare_sandbox(path)
        return path

    def _prepare_sandbox(self, path: Path) -> None:
        (path / "pfs").mkdir(parents=True)
        if self.s.run_as is not None:
            self.s.run_as.own(path, path / "pfs")
        self._make_out(path / "pfs")

    def _worker_sandbox(self, index: int) -> DatumSandbox:
        """Worker ``index``'s sandbox, emptied and reused from datum to datum."""
        found = self._sandboxes.get(index)
        if found is None:
            path = self.s.sandbox_root / self.job.id / self.job.pipeline / f"w{index}"
            found = self._sandboxes[index] = DatumSandbox(path, self._prepare_sandbox)
        return found

    def _make_out(self, pfs_dir: Path) -> None:
        (pfs_dir / "out").mkdir(exist_ok=True)
        if self.s.run_as is not None:
            self.s.run_as.own(pfs_dir / "out")

    def _collect(self, sandbox: Path) -> list[files.Entry]:
        confined = self.s.run_as is not None
        return collect_outputs(
            self.ctx, sandbox / "pfs" / "out", confine_to=sandbox if confined else None,
            owner=self.s.run_as.uid if confined else None,
        )  # fmt: skip

    def _on_log(self, datum_id: str) -> Callable[[str], None]:
        def emit(line: str) -> None:
            self.worker_log.user_line(line, datum_id)

        return emit

    def _run_parallel(self, spec, env, todo: list[Datum], workers: int, resolver: Materialiser) -> None:
        queue = list(reversed(todo))
        lock = threading.Lock()
        tries = max(1, int(spec.datum_tries or 3))
        timeout = spec.datum_timeout.total_seconds() if spec.datum_timeout else None

        def worker(index: int) -> None:
            while not self.cancel.is_set():
                with lock:
                    if not queue:
                        return
                    datum = queue.pop()
                with self.s.slots:
                    if self.cancel.is_set():
                        return
                    try:
                        self._process_one(spec, env, datum, tries, timeout or None, resolver, index)
                    except Exception as exc:  # never lose a datum to a dead thread
                        self._machinery_failed(datum, exc)

        task = self.worker_log.datum_set_task(worker)
        self._run_threads([(task, (i,)) for i in range(min(workers, len(todo)))])

    def _run_threads(self, targets) -> None:
        threads = [threading.Thread(target=t, args=a, daemon=True) for t, a in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _machinery_failed(self, datum: Datum, exc: Exception) -> None:
        """pachd-lite itself could not handle ``datum``: it fails, and so does the job."""
        if isinstance(exc, (OutputError, InputPlacementError)):
            reason = str(exc)
        else:
            log.exception("datum %s of job %s failed inside pachd-lite", datum.id, self.job)
            reason = f"pachd-lite internal error while processing the datum: {type(exc).__name__}: {exc}"
        self.worker_log.line(reason, datum.id)
        self.results.fail(datum, reason)

    def _process_one(self, spec, env, datum: Datum, tries: int, timeout, resolver, index: int) -> None:
        on_log = self._on_log(datum.id)
        datum_log = self.worker_log.datum(datum)
        last = None
        sandbox = None
        place = self._worker_sandbox(index)
        try:
            for _ in range(tries):
                names = {inp.name for inp in datum.inputs}
                sandbox = place.fresh(names)
                resolver.place(datum, sandbox / "pfs")
                place.placed(names)
                with self.s.running.attempt(self.worker_log.key, datum, self.cancel) as cancel:
                    result = datum_log.run_user_code(
                        run_transform, spec.transform, sandbox, {**env, **datum_env(datum)},
                        on_log=on_log, timeout=timeout, cancel=cancel, run_as=self.s.run_as,
                    )  # fmt: skip
                if result.success:
                    outputs = self._collect(sandbox)
                    self.results.record(DatumResult(datum, DATUM_SUCCESS, outputs=outputs))
                    return
                last = result
                if self.cancel.is_set():
                    return
            recovered = datum_log.run_error_handling_code(
                run_err_cmd, spec.transform, sandbox, {**env, **datum_env(datum)}, on_log=on_log,
                run_as=self.s.run_as,
            )  # fmt: skip
        finally:
            if sandbox is not None:
                place.done()
        if recovered is not None and recovered.success:
            self.results.record(DatumResult(datum, DATUM_RECOVERED, reason=last.failure_reason()))
            return
        self.results.fail(datum, last.failure_reason() if last is not None else "datum failed")

    def _secret_env(self, spec: pps.CreatePipelineRequest) -> dict[str, str] | None:
        """The values of ``transform.secrets``, read at job start (as a new worker pod would).

        A missing secret or key is waited for (Kubernetes keeps such a pod in
        CreateContainerConfigError until the secret appears; a secret being replaced is briefly
        absent), then the job fails naming it. None: the job ended."""
        mounts = list(spec.transform.secrets)
        deadline = time.monotonic() + SECRET_WAIT_S
        logged = False
        while True:
            version = self.ctx.db.version
            try:
                return pipeline_secrets.resolve_env(self.ctx, mounts)
            except NotFound as exc:
                if time.monotonic() >= deadline:
                    self._end(jobs.FAILURE, f"cannot start the job's workers: {exc}")
                    return None
                if not logged:
                    self.master_log(f"waiting up to {SECRET_WAIT_S:g}s: {exc}")
                    logged = True
            self._current()  # JobStopped if the job was killed meanwhile
            if self.s.stopping:
                raise JobStopped
            self.ctx.db.wait_for_change(version, min(1.0, max(0.05, deadline - time.monotonic())))

    def _run_batched(self, spec, env, todo: list[Datum], workers: int, resolver: Materialiser) -> None:
        tries = max(1, int(spec.datum_tries or 3))
        timeout = spec.datum_timeout.total_seconds() if spec.datum_timeout else None
        chunks = [todo[i::workers] for i in range(workers)] if todo else []

        def worker(index: int, chunk: list[Datum]) -> None:
            for d in chunk:
                self.worker_log.describe(d)
            with self.s.slots:
                try:
                    batch(index, chunk)
                except Exception as exc:  # never lose the chunk to a dead thread
                    self._machinery_failed(self.results.first_unfinished(chunk), exc)

        def batch(index: int, remaining: list[Datum]) -> None:
            tried: dict[str, int] = defaultdict(int)  # as pachd: a datum the user code never got costs no try
            while remaining and not self.cancel.is_set():
                sandbox = self._sandbox(f"b{index}")
                pfs_dir = sandbox / "pfs"
                outcome_out: dict[str, list[files.Entry]] = {}

                def prepare(d: Datum, pfs_dir=pfs_dir) -> dict[str, str]:
                    for child in pfs_dir.iterdir():
                        if child.name not in (".env",):
                            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
                    self._make_out(pfs_dir)
                    resolver.place(d, pfs_dir)
                    return datum_env(d)

                def finish(d: Datum, error: str | None, pfs_dir=pfs_dir, outcome_out=outcome_out) -> None:
                    if error is None:
                        outcome_out[d.id] = self._collect(pfs_dir.parent)

                def on_log(line: str, d: Datum | None) -> None:
                    self.worker_log.user_line(line, d.id if d else "")

                result = run_batched(
                    spec.transform, env, sandbox, remaining, prepare, finish, on_log,
                    datum_timeout=timeout, cancel=self.cancel, admin_token=self.s.auth_token, run_as=self.s.run_as,
                    on_worker_log=lambda line, d: self.worker_log.line(line, d.id if d else ""),
                    attempt=lambda d: self.s.running.attempt(self.worker_log.key, d, self.cancel),
                )  # fmt: skip
                shutil.rmtree(sandbox, ignore_errors=True)
                retry: list[Datum] = []
                started = any(o.state != BatchState.NOT_RUN for o in result.outcomes)
                for o in result.outcomes:
                    if o.state == BatchState.SUCCESS:
                        self.results.record(
                            DatumResult(o.datum, DATUM_SUCCESS, outputs=outcome_out.get(o.datum.id, []))
                        )
                        continue
                    if o.state != BatchState.NOT_RUN or not started:
                        tried[o.datum.id] += 1
                    if tried[o.datum.id] < tries:
                        retry.append(o.datum)
                    else:
                        reason = (o.error or result.error or "datum not run") + (
                            "\n" + "\n".join(result.log_tail) if result.log_tail else ""
                        )
                        self.results.fail(o.datum, reason)
                remaining = retry

        task = self.worker_log.datum_set_task(worker)
        self._run_threads([(task, (i, c)) for i, c in enumerate(chunks) if c])

    def _watch_for_kill(self, done: threading.Event, job_timeout: float = 0.0) -> None:
        """Cancel running user code as soon as the job is stopped (StopJob, update, delete), the
        server stops, or the job runs past ``job_timeout`` (then, as pachd, it is stopped: JOB_KILLED,
        whether or not a datum failed before); write the datums' results meanwhile."""
        deadline = time.monotonic() + job_timeout if job_timeout > 0 else None
        while not done.wait(KILL_POLL):
            try:
                if self._should_stop(deadline, job_timeout):
                    self.cancel.set()
                    return
                self.results.flush()  # counts (a failed datum) show while other datums still run
            except Exception:  # checked again at the next poll; the job's end does not depend on it
                log.exception("watching job %s failed", self.job)

    def _should_stop(self, deadline: float | None, job_timeout: float) -> bool:
        if deadline is not None and time.monotonic() > deadline:
            self.master_log(f"job ran past its job_timeout ({job_timeout:g}s): stopping it")
            try:
                jobs.stop_job(self.ctx, self.job.project, self.job.pipeline, self.job.id, JOB_TIMED_OUT)
            except NotFound:
                pass  # deleted meanwhile
            return True
        with self.ctx.db.read() as conn:
            job = jobs.find_job(conn, self.job.project, self.job.pipeline, self.job.id)
        return job is None or job.state == jobs.KILLED or self.s.stopping

    def _end(self, state: int, reason: str) -> None:
        self.master_log(reason)
        self.s.logs.flush()
        with self.ctx.db.tx() as conn:
            job = jobs.find_job(conn, self.job.project, self.job.pipeline, self.job.id)
            if job is None or job.terminal:
                return
            jobs.end_job(self.ctx, conn, job, state, reason)
