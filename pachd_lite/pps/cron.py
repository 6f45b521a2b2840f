"""Cron inputs: tick commits on each input's schedule, and RunCron.

As pachd 2.12's pipeline monitor (makeCronCommits / cronTick): a tick is one commit on the cron
repo's master holding an empty file named by the tick time (RFC 3339, UTC); with `overwrite`
the same commit first deletes every earlier tick file. The first tick is the schedule's first
time after the later of `start` and the newest tick file already in the repo, so a restart
neither repeats ticks nor loses them: ticks missed while pachd-lite (or the pipeline) was down
are made one commit each, oldest first. A stopped pipeline makes no ticks.

Public API:
    tick_name(t) -> str   a tick file's name: Go's RFC 3339 of the UTC time, whole seconds
    parse_tick_name(name) -> datetime | None   the time a tick file is named by (None: not a tick)
    CronTicker(ctx).tick_due(now=None) -> int   make every tick that is due; the scheduler loop
        calls it each pass. Returns the number of tick commits made.
    run_cron(ctx, project, name) -> None   RunCron: one tick now on every cron input of the
        pipeline; Unknown "pipeline doesn't have a cron input" without one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pachyderm_sdk.api import pps

from pachd_lite import cronspec
from pachd_lite.errors import NotFound, Unknown
from pachd_lite.pfs import files
from pachd_lite.pfs.model import CommitRef, PfsContext
from pachd_lite.pps import pipelines
from pachd_lite.pps.datums import cron_repo
from pachd_lite.pps.spec import cron_inputs

log = logging.getLogger(__name__)

MAX_TICKS_PER_PASS = 100  # a long catch-up continues on the next pass instead of blocking the loop
MIN_CHECK_INTERVAL = 0.25  # seconds: the scheduler loop also wakes on every database change


def tick_name(t: datetime) -> str:
    """Go's time.RFC3339 for a UTC time: "2024-01-02T03:04:05Z"."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_tick_name(name: str) -> datetime | None:
    """The time a tick file is named by, or None for a name that is not one."""
    try:
        t = datetime.fromisoformat(name.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(UTC) if t.tzinfo is not None else None


def write_tick(ctx: PfsContext, project: str, cron: pps.CronInput, when: datetime) -> None:
    """One tick commit on the cron repo's master (pachd's cronTick)."""
    session = files.ModifyFileSession(ctx)
    try:
        session.set_commit(CommitRef(cron_repo(cron, project), branch="master"))
        if cron.overwrite:
            session.delete("/")
        session.add_raw("/" + tick_name(when), b"")
        session.close()
    except BaseException:
        session.abort()
        raise


def latest_tick(ctx: PfsContext, project: str, cron: pps.CronInput) -> datetime:
    """The later of `start` and the newest tick file in the repo (pachd's getLatestCronTime)."""
    start = cron.start.astimezone(UTC)
    try:
        infos = files.list_file(ctx, CommitRef(cron_repo(cron, project), branch="master"), "/")
    except NotFound:  # no tick yet: the branch has no commit
        return start
    ticks = [t for t in (parse_tick_name(i.path.strip("/")) for i in infos) if t is not None]
    return max([start, *ticks])


@dataclass
class _State:
    schedule: cronspec.Schedule
    latest: datetime
    due: datetime | None = None  # the next tick after `latest`; None: the schedule is over

    def __post_init__(self) -> None:
        self.due = self.schedule.next_time(self.latest)


class CronTicker:
    """Makes the due ticks of every running pipeline's cron inputs; owned by the scheduler.

    Keeps, per pipeline version and input, the last tick it made (as pachd's monitor does in
    memory), read back from the repo when it first sees the input, e.g. after a restart.
    """

    def __init__(self, ctx: PfsContext) -> None:
        self.ctx = ctx
        self._state: dict[tuple[str, str, int, str], _State] = {}
        self._failing: set[tuple[str, str, int, str]] = set()
        self._last_check = 0.0

    def tick_due(self, now: datetime | None = None) -> int:
        if now is None:
            if time.monotonic() - self._last_check < MIN_CHECK_INTERVAL:
                return 0
            self._last_check = time.monotonic()
            now = datetime.now(UTC)
        made = 0
        live: set[tuple[str, str, int, str]] = set()
        for record in pipelines.list_pipelines(self.ctx):
            if record.stopped:
                continue
            for cron in cron_inputs(record.spec.input):
                key = (record.project, record.name, record.version, cron.name)
                live.add(key)
                try:
                    made += self._tick_input(key, record.project, cron, now)
                    self._failing.discard(key)
                except Exception:  # one broken input must not stop the others or the scheduler
                    if key not in self._failing:  # once, not every pass
                        log.exception("cron input %s of pipeline %s: tick failed", cron.name, record)
                    self._failing.add(key)
        self._failing &= live
        for key in set(self._state) - live:  # deleted, updated or stopped: re-read when back
            del self._state[key]
        return made

    def _tick_input(
        self, key: tuple[str, str, int, str], project: str, cron: pps.CronInput, now: datetime
    ) -> int:
        state = self._state.get(key)
        if state is None:
            state = _State(cronspec.parse(cron.spec), latest_tick(self.ctx, project, cron))
            self._state[key] = state
        made = 0
        # pachd's makeCronCommits stops at robfig's zero time (due None): no tick ever again
        while made < MAX_TICKS_PER_PASS and state.due is not None and state.due <= now:
            write_tick(self.ctx, project, cron, state.due)
            state.latest = state.due
            state.due = state.schedule.next_time(state.latest)
            made += 1
        return made


def run_cron(ctx: PfsContext, project: str, name: str) -> None:
    """RunCron: a tick now on each cron input (pachd: one commit per input, all with one time)."""
    record = pipelines.get_pipeline(ctx, project, name)
    crons = cron_inputs(record.spec.input)
    if not crons:
        raise Unknown("pipeline doesn't have a cron input")
    now = datetime.now(UTC)
    for cron in crons:
        write_tick(ctx, record.project, cron, now)
