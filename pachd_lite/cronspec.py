"""Cron schedules as pachd reads them: robfig/cron v1 ``ParseStandard`` plus pachd's ``@never``.

Accepted: five fields (minute hour day-of-month month day-of-week, with ``*``/``?``, ``a-b``,
``/step``, lists and month/day names), the descriptors ``@yearly``/``@annually``, ``@monthly``,
``@weekly``, ``@daily``/``@midnight``, ``@hourly``, ``@every <Go duration>`` and ``@never``.
Times are epoch seconds evaluated in UTC (pachd reads protobuf timestamps, which are UTC).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

NEVER = 253_370_764_800.0  # 9999-01-01T00:00:00Z, pachd's "@never" tick
SEARCH_YEARS = 5  # robfig gives up (no next tick) after five years

MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
# (min, max, names) of minute, hour, day of month, month, day of week
BOUNDS: tuple[tuple[int, int, dict[str, int] | None], ...] = (
    (0, 59, None),
    (0, 23, None),
    (1, 31, None),
    (1, 12, MONTHS),
    (0, 6, DAYS),
)
DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
GO_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class CronError(ValueError):
    """A schedule that does not parse; the message is robfig/cron's."""


class Schedule:
    def next(self, after: float) -> float | None:
        """The first tick strictly after ``after``; None when there is none within the search."""
        raise NotImplementedError


@dataclass(frozen=True)
class Never(Schedule):
    def next(self, after: float) -> float | None:
        return NEVER


@dataclass(frozen=True)
class Every(Schedule):
    """``@every``: the delay rounded down to whole seconds (at least one), from the whole second."""

    seconds: int

    def next(self, after: float) -> float | None:
        return math.floor(after) + self.seconds


@dataclass(frozen=True)
class Fields(Schedule):
    minutes: frozenset[int]
    hours: frozenset[int]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]
    dom_star: bool
    dow_star: bool

    def _day_matches(self, day: datetime) -> bool:
        dom, dow = day.day in self.doms, (day.weekday() + 1) % 7 in self.dows
        # robfig: a starred day field makes the two an AND, otherwise either matches
        return dom and dow if self.dom_star or self.dow_star else dom or dow

    def next(self, after: float) -> float | None:
        start = datetime.fromtimestamp(after, UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        while day.year <= start.year + SEARCH_YEARS:
            if day.month in self.months and self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        tick = day.replace(hour=hour, minute=minute)
                        if tick >= start:
                            return tick.timestamp()
            day += timedelta(days=1)
        return None


def _number(text: str, names: dict[str, int] | None) -> int:
    if names is not None and text.lower() in names:
        return names[text.lower()]
    if not re.fullmatch(r"[+-]?\d+", text):
        raise CronError(f'Failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if value < 0:
        raise CronError(f"Negative number ({value}) not allowed: {text}")
    return value


def _range(expr: str, low: int, high: int, names: dict[str, int] | None) -> tuple[set[int], bool]:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    star = low_and_high[0] in ("*", "?")
    if star:
        start, end = low, high
    else:
        start = _number(low_and_high[0], names)
        if len(low_and_high) > 2:
            raise CronError(f"Too many hyphens: {expr}")
        end = _number(low_and_high[1], names) if len(low_and_high) == 2 else start
    if len(range_and_step) > 2:
        raise CronError(f"Too many slashes: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _number(range_and_step[1], None)
        if len(low_and_high) == 1:  # "N/step" means "N-max/step"
            end = high
    if start < low:
        raise CronError(f"Beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise CronError(f"End of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise CronError(f"Beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"Step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star


def _go_duration(text: str) -> float:
    """Go's time.ParseDuration (sign, decimal parts, units ns..h), in seconds."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    parts = GO_DURATION_PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise CronError(f'Failed to parse duration @every {text}: time: invalid duration "{text}"')
    seconds = sum(float(n) * GO_UNITS[u] for n, u in parts)
    return -seconds if text.startswith("-") else seconds


def parse(spec: str) -> Schedule:
    """Parse a cron spec as pachd's cronutil.ParseCronExpression does; raises CronError."""
    if spec.strip() == "@never":
        return Never()
    if not spec:
        raise CronError("Empty spec string")
    if spec.startswith("@"):
        if spec.startswith("@every "):
            seconds = _go_duration(spec[len("@every ") :])
            return Every(max(1, int(seconds)))
        if spec not in DESCRIPTORS:
            raise CronError(f"Unrecognized descriptor: {spec}")
        spec = DESCRIPTORS[spec]
    fields = spec.split()
    if len(fields) != len(BOUNDS):
        raise CronError(f"Expected exactly {len(BOUNDS)} fields, found {len(fields)}: {spec}")
    sets: list[frozenset[int]] = []
    stars: list[bool] = []
    for field, (low, high, names) in zip(fields, BOUNDS, strict=True):
        values: set[int] = set()
        star = False
        for expr in (e for e in field.split(",") if e):
            got, starred = _range(expr, low, high, names)
            values |= got
            star = star or starred
        sets.append(frozenset(values))
        stars.append(star)
    return Fields(*sets, dom_star=stars[2], dow_star=stars[4])
