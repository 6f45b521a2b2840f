"""Cron ticks in the domain (no gRPC, no scheduler thread), with a chosen clock: catch-up after
downtime, restart without repeats, overwrite, stopped pipelines (pachd 2.12's
src/server/pps/server/monitor.go: makeCronCommits, getLatestCronTime, cronTick)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pachd_lite.pfs import files
from pachd_lite.pfs.model import CommitRef, RepoRef
from pachd_lite.pps import cron, pipelines
from pachd_lite.pps.spec import parse_create_pipeline_request

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _pipeline(ctx, name: str, **cron_fields) -> RepoRef:
    spec = {
        "pipeline": {"name": name},
        "input": {
            "cron": {"name": "tick", "spec": "@every 1h", "start": "2026-01-01T00:00:00Z", **cron_fields}
        },
        "transform": {"cmd": ["true"]},
    }
    pipelines.create_pipeline(ctx, parse_create_pipeline_request(json.dumps(spec)))
    return RepoRef("default", f"{name}_tick")


def _ticks(ctx, repo: RepoRef) -> list[str]:
    return [i.path for i in files.list_file(ctx, CommitRef(repo, branch="master"), "/")]


def test_catch_up_is_one_commit_per_missed_tick_and_a_restart_repeats_none(ctx, monkeypatch):
    repo = _pipeline(ctx, "hourly")
    monkeypatch.setattr(cron, "MAX_TICKS_PER_PASS", 2)
    ticker, now = cron.CronTicker(ctx), T0 + timedelta(hours=5, minutes=30)
    assert [ticker.tick_due(now) for _ in range(4)] == [2, 2, 1, 0]  # a long catch-up spans passes
    assert _ticks(ctx, repo) == [f"/2026-01-01T0{h}:00:00Z" for h in range(1, 6)]
    assert cron.CronTicker(ctx).tick_due(now) == 0  # restarted: goes on from the newest tick file
    assert cron.CronTicker(ctx).tick_due(now + timedelta(hours=1)) == 1
    assert _ticks(ctx, repo)[-1] == "/2026-01-01T06:00:00Z"


def test_overwrite_keeps_only_the_latest_tick(ctx):
    repo = _pipeline(ctx, "latest", overwrite=True)
    assert cron.CronTicker(ctx).tick_due(T0 + timedelta(hours=3)) == 3
    assert _ticks(ctx, repo) == ["/2026-01-01T03:00:00Z"]


def test_a_stopped_pipeline_does_not_tick_and_catches_up_when_started(ctx):
    repo = _pipeline(ctx, "paused")
    pipelines.set_stopped(ctx, "default", "paused", True)
    ticker = cron.CronTicker(ctx)
    assert ticker.tick_due(T0 + timedelta(hours=2)) == 0
    pipelines.set_stopped(ctx, "default", "paused", False)
    assert ticker.tick_due(T0 + timedelta(hours=2)) == 2
    assert len(_ticks(ctx, repo)) == 2
