"""Cron input schedules: the spec forms pachd 2.12 accepts and when they fire next.

pachd parses `cron.spec` with robfig/cron v1's ParseStandard (plus its own `@never`):
exactly five fields (minute hour day-of-month month day-of-week, names like JAN/MON allowed),
the descriptors @yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly, and
`@every <Go duration>` ("1s", "1m30s", "1.5h"; under a second counts as one second, fractions
of a second are dropped). Times are UTC.

Public API:
    parse_schedule(spec) -> Schedule     raises CronSpecError (a ValueError) naming the problem
    Schedule.next(after: datetime) -> datetime   first tick strictly after `after` (NEVER if none)
    tick_name(t) -> str                  the tick file's name: RFC 3339 in UTC, whole seconds
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import CroniterError, croniter

NEVER = datetime(9999, 1, 1, tzinfo=UTC)

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELD_RE = re.compile(r"^[0-9*/,?-]+$")
# Go's time.ParseDuration units, in nanoseconds
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
          "h": 3600 * 10**9}  # fmt: skip
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class CronSpecError(ValueError):
    """A cron spec pachd would not accept."""


@dataclass(frozen=True)
class Schedule:
    """A parsed spec: a fixed delay (@every), a 5-field expression, or never."""

    expr: str = ""
    every: timedelta | None = None

    def next(self, after: datetime) -> datetime:
        after = after.astimezone(UTC)
        if self.every is not None:
            # robfig's ConstantDelaySchedule: drop the fractional second, then add the delay
            return after.replace(microsecond=0) + self.every
        if not self.expr:
            return NEVER
        try:
            nxt = croniter(self.expr, after).get_next(datetime)
        except CroniterError:  # no such day within reach (e.g. 30 February): robfig's zero time
            return NEVER
        return nxt.astimezone(UTC)


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


def parse_schedule(spec: str) -> Schedule:
    """The schedule of `spec`, or CronSpecError saying why pachd would refuse it."""
    text = spec.strip()
    if not text:
        raise CronSpecError("empty spec string")
    if text == "@never":
        return Schedule()
    if text.startswith("@every "):
        return Schedule(every=_every(text[len("@every ") :].strip()))
    if text.startswith("@"):
        if text not in _DESCRIPTORS:
            raise CronSpecError(f"unrecognized descriptor: {text}")
        return Schedule(expr=_DESCRIPTORS[text])
    fields = text.split()
    if len(fields) != 5:
        raise CronSpecError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    checked = [_field(f, i) for i, f in enumerate(fields)]
    expr = " ".join(checked)
    if not croniter.is_valid(expr):
        raise CronSpecError(f"invalid cron expression: {text}")
    return Schedule(expr=expr)


def _field(value: str, index: int) -> str:
    names = _MONTHS if index == 3 else _DAYS if index == 4 else ()
    plain = value.lower()
    for name in names:
        plain = plain.replace(name, "0")
    if not _FIELD_RE.match(plain):
        raise CronSpecError(f"invalid cron field {value!r} (field {index + 1} of 5)")
    return value.replace("?", "*")


def _every(text: str) -> timedelta:
    """Go's time.ParseDuration, then robfig's Every (at least 1s, whole seconds)."""
    if text in ("0", "+0", "-0"):
        nanos = 0
    else:
        body = text.lstrip("+-")
        parts = _DURATION_PART.findall(body)
        if not body or "".join(n + u for n, u in parts) != body:
            raise CronSpecError(f"failed to parse duration {text}: invalid duration {text!r}")
        nanos = sum(math.floor(float(n) * _UNITS[u]) for n, u in parts)
        if text.startswith("-"):
            nanos = -nanos
    return timedelta(seconds=max(1, nanos // 10**9))
