"""The PPS scheduler: starts each runnable job on its own thread (one job at a time per
pipeline, in creation order); pachd_lite.pps.job_runner runs it. Datum workers of every job
share ``max_parallelism`` slots. After a crash, unfinished jobs start over; cron inputs' due
ticks are made between dispatch passes.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading

from pachd_lite.pfs.model import PfsContext
from pachd_lite.pps import jobs, sandboxes
from pachd_lite.pps.cron import CronTicker
from pachd_lite.pps.job_runner import JobRunner
from pachd_lite.pps.logs import LogStore
from pachd_lite.pps.process_family import CHILDREN
from pachd_lite.pps.restarts import RunningDatums
from pachd_lite.pps.run_as import USER_ENV_VAR, RunAs

log = logging.getLogger("pachd_lite.pps")


class Scheduler:
    """Dispatches runnable jobs to job threads; datum workers share ``max_parallelism`` slots."""

    def __init__(
        self,
        ctx: PfsContext,
        logs: LogStore,
        pachd_address: tuple[str, int],
        max_parallelism: int = 0,
        auth_token: str = "",
        run_as: RunAs | None = None,
    ):
        self.ctx = ctx
        self.running = RunningDatums()  # the datums RestartDatum can cancel
        self.logs = logs
        self.pachd_address = pachd_address
        self.auth_token = auth_token
        self.run_as = run_as  # None: user code runs as pachd-lite's own user
        self.cap = max_parallelism or os.cpu_count() or 1
        self.slots = threading.BoundedSemaphore(self.cap)
        self.sandbox_root = ctx.root / "sandboxes"  # replaced by a folder outside the root at start
        self._running: dict[tuple[str, str], threading.Thread] = {}
        self._stop = threading.Event()
        self.cron = CronTicker(ctx)
        self._thread = threading.Thread(target=self._loop, name="pps-scheduler", daemon=True)

    @property
    def stopping(self) -> bool:
        """The server is shutting down: no new job starts, running ones stop."""
        return self._stop.is_set()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if not CHILDREN.become_subreaper():
            log.warning("cannot adopt orphaned user processes (no PR_SET_CHILD_SUBREAPER): "
                        "a process user code detaches with setsid may outlive its datum")  # fmt: skip
        self.recover()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.ctx.db.changed:
            self.ctx.db.changed.notify_all()
        self._thread.join(5)
        for thread in list(self._running.values()):
            thread.join(5)
        if not any(t.is_alive() for t in self._running.values()):
            shutil.rmtree(self.sandbox_root, ignore_errors=True)

    def recover(self) -> None:
        """Unfinished jobs from before a crash start over; finished jobs are untouched."""
        if self.run_as is not None:
            os.chmod(self.ctx.root, 0o700)  # the store, the database, secrets: out of user code's reach
        elif os.geteuid() == 0:
            log.warning(
                "user code runs as root: it can read and change everything under %s (set %s to an "
                "unprivileged user to prevent that)", self.ctx.root, USER_ENV_VAR,
            )  # fmt: skip
        self.sandbox_root = sandboxes.open_area(self.ctx.root, shared_with_other_user=self.run_as is not None)
        with self.ctx.db.tx() as conn:
            rows = conn.execute(
                "SELECT * FROM jobs WHERE state IN (?, ?, ?)", (jobs.STARTING, jobs.RUNNING, jobs.FINISHING)
            ).fetchall()
            for row in rows:
                key = (row["project"], row["pipeline"], row["id"])
                conn.execute("DELETE FROM datums WHERE project = ? AND pipeline = ? AND job_id = ?", key)
                conn.execute(
                    "DELETE FROM datum_outputs WHERE project = ? AND pipeline = ? AND job_id = ?", key
                )
                conn.execute(
                    "UPDATE jobs SET state = ?, restart = restart + 1, data_processed = 0, data_skipped = 0, "
                    "data_failed = 0, data_recovered = 0, started = NULL WHERE project = ? AND pipeline = ? AND id = ?",
                    (jobs.CREATED, *key),
                )
        if rows:
            log.info("restarting %d unfinished job(s) after a restart", len(rows))

    def _loop(self) -> None:
        while not self._stop.is_set():
            version = self.ctx.db.version
            try:
                self._dispatch()
                self.cron.tick_due()  # cron inputs' due ticks: commits that the next pass dispatches
            except Exception:  # keep scheduling
                log.exception("scheduler dispatch failed")
            self.ctx.db.wait_for_change(version, 1.0)

    def _dispatch(self) -> None:
        for key, thread in list(self._running.items()):
            if not thread.is_alive():
                del self._running[key]
        terminal = ",".join(str(s) for s in jobs.TERMINAL)
        with self.ctx.db.read() as conn:
            rows = conn.execute(f"SELECT * FROM jobs WHERE state NOT IN ({terminal}) ORDER BY seq").fetchall()
            stopped = {
                (r["project"], r["name"])
                for r in conn.execute(
                    "SELECT project, name, stopped FROM pipelines p WHERE version = "
                    "(SELECT MAX(version) FROM pipelines q WHERE q.project = p.project AND q.name = p.name)"
                ).fetchall()
                if r["stopped"]
            }
        seen: set[tuple[str, str]] = set()
        for row in rows:
            key = (row["project"], row["pipeline"])
            if key in seen:
                continue  # jobs of one pipeline run in order
            seen.add(key)
            if key in self._running or key in stopped or self._stop.is_set():
                continue
            job = jobs._record(row)
            thread = threading.Thread(
                target=JobRunner(self, job).run, name=f"job-{row['pipeline']}-{row['id'][:8]}", daemon=True
            )
            self._running[key] = thread
            thread.start()
