"""Branch triggers as pachd 2.12 fires them: a branch follows another branch of its repo.

A trigger (``branch``, ``size``, ``commits``, ``rate_limit_spec``, ``all``) is checked when a commit
finishes without error: every branch of the commit's repo whose trigger (transitively) names the
commit's branch may move its head to that commit, earlier triggers of a chain first. A trigger
with a ``cron_spec`` is not checked then; a clock (:class:`CronTriggers`) moves its head to the
source branch's head at every tick instead. A moved head propagates like any head move, so
pipelines reading the triggered branch get jobs.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import threading
import time
from dataclasses import dataclass

from pachd_lite import cronspec
from pachd_lite.errors import Unknown
from pachd_lite.pfs import graph
from pachd_lite.pfs.model import ORIGIN_AUTO, PfsContext
from pachd_lite.pfs.names import new_commit_set_id, validate_name

log = logging.getLogger("pachd_lite.triggers")

SI_UNITS = {"k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}
POLL = 1.0  # seconds between looks for new or changed cron triggers


@dataclass(frozen=True)
class Trigger:
    branch: str = ""
    all: bool = False
    cron_spec: str = ""
    rate_limit_spec: str = ""
    size: str = ""
    commits: int = 0

    @classmethod
    def from_json(cls, text: str) -> Trigger | None:
        """The stored form (protobuf JSON, camelCase or snake_case keys); None for no trigger."""
        if not text:
            return None
        raw = json.loads(text)
        return cls(
            branch=raw.get("branch", ""),
            all=bool(raw.get("all", False)),
            cron_spec=raw.get("cronSpec", raw.get("cron_spec", "")),
            rate_limit_spec=raw.get("rateLimitSpec", raw.get("rate_limit_spec", "")),
            size=raw.get("size", ""),
            commits=int(raw.get("commits", 0)),
        )


def parse_size(text: str) -> int:
    """Bytes in a size as pachd reads it (docker/go-units FromHumanSize): decimal units, so
    "1K", "1KB" and "1KiB" are all 1000 bytes; the "B" is optional; one space may precede the unit."""
    split = max(text.rfind(c) for c in "0123456789. ")
    if split < 0:
        raise ValueError(f"invalid size: '{text}'")
    number, suffix = (
        (text[: split + 1], text[split + 1 :]) if text[split] != " " else (text[:split], text[split + 1 :])
    )
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", number):
        raise ValueError(f'strconv.ParseFloat: parsing "{number}": invalid syntax')
    size = float(number)
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    low = suffix.lower()
    if not suffix or low == "b":
        return int(size)
    if len(suffix) > 3:
        raise ValueError(f"invalid suffix: '{suffix}'")
    if low[0] not in SI_UNITS or (len(low) == 2 and low[1] != "b") or (len(low) == 3 and low[1:] != "ib"):
        raise ValueError(f"invalid suffix: '{low}'")
    return int(size * SI_UNITS[low[0]])


def validate(
    conn: sqlite3.Connection, repo_id: int, branch: str, trigger: Trigger, has_provenance: bool
) -> None:
    """Refuse a trigger as pachd's createBranch/validateTrigger do (plain errors: UNKNOWN)."""
    if not trigger.branch:
        raise Unknown("triggers must specify a branch to trigger on")
    validate_name("trigger branch", trigger.branch)
    if trigger.rate_limit_spec:
        try:
            cronspec.parse(trigger.rate_limit_spec)
        except cronspec.CronError as exc:
            raise Unknown(f"invalid trigger rate limit spec: {exc}") from exc
    if trigger.size:
        try:
            parse_size(trigger.size)
        except ValueError as exc:
            raise Unknown(f"invalid trigger size: {exc}") from exc
    if trigger.commits < 0:
        raise Unknown("can't trigger on a negative number of commits")
    if trigger.cron_spec:
        try:
            cronspec.parse(trigger.cron_spec)
        except cronspec.CronError as exc:
            raise Unknown(f"invalid trigger cron spec: {exc}") from exc
    others = {
        r["name"]: Trigger.from_json(r["trigger"])
        for r in conn.execute("SELECT name, trigger FROM branches WHERE repo_id = ?", (repo_id,))
    }
    source: str | None = trigger.branch
    seen: set[str] = set()
    while source is not None and source not in seen:
        if source == branch:
            raise Unknown("triggers cannot form a loop")
        seen.add(source)
        upstream = others.get(source)
        source = upstream.branch if upstream is not None else None
    if has_provenance:
        raise Unknown("a branch cannot have both provenance and a trigger")


def _is_triggered(conn: sqlite3.Connection, t: Trigger, old: sqlite3.Row, new: sqlite3.Row) -> bool:
    """pachd's isTriggered: each set condition, all of them with ``all``, else any one."""
    conditions: list[bool] = []
    if t.size:
        conditions.append(new["size_bytes"] - old["size_bytes"] >= parse_size(t.size))
    if t.rate_limit_spec:
        tick = cronspec.parse(t.rate_limit_spec).next(old["finishing"] or -62135596800.0)  # Go's zero time
        conditions.append(tick is None or tick < (new["finishing"] or 0.0))
    if t.commits:
        conditions.append(_commits_since(conn, new, old["id"], t.commits) == t.commits)
    return all(conditions) if t.all else any(conditions)


def _commits_since(conn: sqlite3.Connection, new: sqlite3.Row, old_id: int, limit: int) -> int:
    """Commits from ``new`` back to (not including) the old head, counted up to ``limit``, as pachd
    counts them. pachd's first commit on a branch has an empty AUTO parent, which stops the walk
    without counting; pachd-lite's has none, so a parentless commit counts unless it is AUTO."""
    row, count = new, 0
    while count < limit:
        if row["id"] == old_id:
            break
        if row["parent_id"] is None:
            if row["origin"] != ORIGIN_AUTO:
                count += 1
            break
        row = conn.execute("SELECT * FROM commits WHERE id = ?", (row["parent_id"],)).fetchone()
        count += 1
    return count


def _move_heads(ctx: PfsContext, conn: sqlite3.Connection, moves: dict[int, int]) -> None:
    """Point each branch id at its commit id and propagate, in one new commit set."""
    now = time.time()
    for branch_id, head_id in moves.items():
        conn.execute(
            "UPDATE branches SET head_id = ?, updated_at = ? WHERE id = ?", (head_id, now, branch_id)
        )
    ctx.run_new_commit_hooks(conn, graph.propagate(conn, new_commit_set_id(), list(moves)))


def fire_on_finish(ctx: PfsContext, conn: sqlite3.Connection, commit_ids: list[int]) -> None:
    """The finished-commit hook: fire the triggers the finished commits satisfy (pachd's triggerCommit)."""
    for commit_id in commit_ids:
        commit = conn.execute("SELECT * FROM commits WHERE id = ?", (commit_id,)).fetchone()
        if commit is not None and not commit["error"]:
            moves = _triggered_moves(conn, commit)
            if moves:
                _move_heads(ctx, conn, moves)


def _triggered_moves(conn: sqlite3.Connection, commit: sqlite3.Row) -> dict[int, int]:
    """Branch id -> new head id for every trigger of the commit's repo that ``commit`` fires."""
    branches = {
        r["name"]: r for r in conn.execute("SELECT * FROM branches WHERE repo_id = ?", (commit["repo_id"],))
    }
    new_heads: dict[str, sqlite3.Row | None] = {}
    if commit["branch_name"]:
        new_heads[commit["branch_name"]] = commit
    moves: dict[int, int] = {}

    def visit(branch: sqlite3.Row) -> sqlite3.Row | None:
        name = branch["name"]
        if name in new_heads:
            return new_heads[name]
        new_heads[name] = None
        trigger = Trigger.from_json(branch["trigger"])
        if trigger is None or trigger.cron_spec or trigger.branch not in branches:
            return None
        new_head = visit(branches[trigger.branch])  # earlier triggers of a chain first
        if new_head is None or new_head["id"] == branch["head_id"]:
            return None
        old_head = conn.execute("SELECT * FROM commits WHERE id = ?", (branch["head_id"],)).fetchone()
        if old_head is None or not _is_triggered(conn, trigger, old_head, new_head):
            return None
        moves[branch["id"]] = new_head["id"]
        new_heads[name] = new_head
        return new_head

    for branch in branches.values():
        visit(branch)
    return moves


@dataclass
class _Clock:
    spec: str
    schedule: cronspec.Schedule
    prev: float


class CronTriggers:
    """The background thread that fires ``cron_spec`` triggers at their ticks (pachd's runCronTrigger).

    The first tick follows the triggered branch's head's start time; after a tick the next follows
    that tick. Ticks missed while pachd-lite was down or busy fire once, not once each.
    """

    def __init__(self, ctx: PfsContext) -> None:
        self.ctx = ctx
        self._clocks: dict[int, _Clock] = {}
        self._failing: set[int] = set()  # branches whose last fire failed (logged once)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cron-triggers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.tick(time.time())
            except Exception:  # never take the server down; the next look retries
                log.exception("cron trigger check failed")
                wait = POLL
            self._stop.wait(max(0.01, min(wait, POLL)))

    def tick(self, now: float) -> float:
        """Fire the cron triggers that are due; return the seconds until the next tick."""
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                "SELECT b.id, b.trigger, c.started FROM branches b LEFT JOIN commits c ON c.id = b.head_id "
                "WHERE b.trigger LIKE '%ron%'"
            ).fetchall()
        wait = math.inf
        live: set[int] = set()
        for row in rows:
            trigger = Trigger.from_json(row["trigger"])
            if trigger is None or not trigger.cron_spec:
                continue
            live.add(row["id"])
            clock = self._clocks.get(row["id"])
            if clock is None or clock.spec != trigger.cron_spec:
                try:
                    schedule = cronspec.parse(trigger.cron_spec)
                except cronspec.CronError:  # refused at create time; stored by an older version
                    continue
                clock = self._clocks[row["id"]] = _Clock(trigger.cron_spec, schedule, row["started"] or now)
            due = clock.schedule.next(clock.prev)
            if due is not None and due <= now:
                if not self._fire(row["id"], trigger):
                    wait = min(wait, POLL)  # retried at the next look, not in a busy loop
                    continue
                # The next tick follows now, not the tick that was due: missed ticks fire once.
                clock.prev = now
                due = clock.schedule.next(now)
            if due is not None:
                wait = min(wait, due - now)
        for gone in set(self._clocks) - live:
            del self._clocks[gone]
        self._failing &= live
        return wait

    def _fire(self, branch_id: int, trigger: Trigger) -> bool:
        with self.ctx.db.tx() as conn:
            branch = conn.execute("SELECT * FROM branches WHERE id = ?", (branch_id,)).fetchone()
            if branch is None:
                return False
            source = conn.execute(
                "SELECT * FROM branches WHERE repo_id = ? AND name = ?", (branch["repo_id"], trigger.branch)
            ).fetchone()
            if source is None or source["head_id"] is None:
                if branch_id not in self._failing:  # once, not at every retry
                    log.warning(
                        "cron trigger of branch %s: source branch %s not found",
                        branch["name"],
                        trigger.branch,
                    )
                self._failing.add(branch_id)
                return False
            _move_heads(self.ctx, conn, {branch_id: source["head_id"]})
            self._failing.discard(branch_id)
            return True
