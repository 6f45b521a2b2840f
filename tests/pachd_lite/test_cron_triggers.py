"""Cron-spec branch triggers in the domain (no gRPC, no thread), with a chosen clock: ticks missed
while down fire once, and a trigger that cannot fire is retried calmly (pachd 2.12's
src/server/pfs/server/master.go, runCronTrigger, moves the branch at each tick)."""

from __future__ import annotations

import json
import logging

from pachd_lite.pfs import branches, commits, repos
from pachd_lite.pfs.model import BranchRef, RepoRef
from pachd_lite.pfs.triggers import POLL, CronTriggers

TWO_DAYS = 2 * 24 * 3600.0


def _triggered(ctx, source: str, cron_spec: str) -> tuple[RepoRef, BranchRef]:
    repo = RepoRef("default", "data")
    repos.create_repo(ctx, repo)
    ticking = BranchRef(repo, "ticking")
    branches.create_branch(ctx, ticking, trigger=json.dumps({"branch": source, "cronSpec": cron_spec}))
    return repo, ticking


def test_ticks_missed_while_down_fire_once(ctx) -> None:
    repo, ticking = _triggered(ctx, "master", "@every 1s")
    done = commits.start_commit(ctx, BranchRef(repo, "master"))
    commits.finish_commit(ctx, done.ref)
    triggers = CronTriggers(ctx)
    later = commits.inspect_commit(ctx, done.ref).started + TWO_DAYS  # 172,800 ticks missed

    assert 0 < triggers.tick(later) <= 1  # fired, and the next tick is a second away
    assert branches.inspect_branch(ctx, ticking).head.id == done.ref.id
    assert 0 < triggers.tick(later) <= 1  # nothing more is due: the missed ticks fired once


def test_a_trigger_whose_source_is_missing_is_retried_at_the_poll_and_logged_once(ctx, caplog) -> None:
    _, ticking = _triggered(ctx, "nope", "@every 1s")
    triggers = CronTriggers(ctx)
    head = branches.inspect_branch(ctx, ticking).head  # the empty head made with the branch
    now = commits.inspect_commit(ctx, head).started + 10
    with caplog.at_level(logging.WARNING, logger="pachd_lite"):
        assert [triggers.tick(now), triggers.tick(now)] == [POLL, POLL]  # not a busy loop
    assert [r.getMessage() for r in caplog.records].count(
        "cron trigger of branch ticking: source branch nope not found"
    ) == 1
