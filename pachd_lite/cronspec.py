"""Cron specs as pachd 2.12 reads them: robfig/cron v1 ``ParseStandard`` plus pachd's ``@never``.

One parser for both users: cron inputs (``pps/``, "error parsing cron-spec: ...") and branch
triggers' ``cron_spec``/``rate_limit_spec`` (``pfs/``, "invalid trigger cron spec: ..."); the
callers add those prefixes, :class:`CronError` carries robfig/cron's own message.

Accepted: five fields (minute hour day-of-month month day-of-week, with ``*``/``?``, ``a-b``,
``/step``, lists and month/day names), the descriptors ``@yearly``/``@annually``, ``@monthly``,
``@weekly``, ``@daily``/``@midnight``, ``@hourly``, ``@every <Go duration>`` and ``@never``.
Times are evaluated in UTC (pachd reads protobuf timestamps, which are UTC).

Public API:
    parse(spec) -> Schedule                            raises CronError
    Schedule.next_time(after: datetime) -> datetime | None   first tick strictly after ``after``
    Schedule.next(after: float) -> float | None        the same in epoch seconds
    NEVER (epoch seconds), NEVER_TIME (datetime): ``@never``'s tick, 9999-01-01T00:00:00Z
None means no tick within robfig's five-year search (Go's zero time: the schedule is over).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

NEVER_TIME = datetime(9999, 1, 1, tzinfo=UTC)
NEVER = NEVER_TIME.timestamp()  # 253_370_764_800.0
SEARCH_YEARS = 5  # robfig gives up (no next tick) after five years
GO_INT_MAX = 2**63 - 1

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
# Go's time.ParseDuration units, in nanoseconds
GO_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
            "h": 3600 * 10**9}  # fmt: skip
# one "<digits>[.<digits>]<unit>" part; the look-ahead wants a digit or dot first, as Go does
GO_DURATION_PART = re.compile(r"(?=[0-9.])([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


class CronError(ValueError):
    """A schedule that does not parse; the message is robfig/cron's."""


class Schedule:
    """A parsed spec; subclasses say when it ticks."""

    def next_time(self, after: datetime) -> datetime | None:
        """The first tick strictly after ``after`` (an aware datetime); None when there is none."""
        raise NotImplementedError

    def next(self, after: float) -> float | None:
        """:meth:`next_time` in epoch seconds."""
        tick = self.next_time(datetime.fromtimestamp(after, UTC))
        return None if tick is None else tick.timestamp()


@dataclass(frozen=True)
class Never(Schedule):
    """pachd's ``@never``: a single tick in the year 9999."""

    def next_time(self, after: datetime) -> datetime | None:
        return NEVER_TIME


@dataclass(frozen=True)
class Every(Schedule):
    """``@every``: the delay rounded down to whole seconds (at least one), from the whole second."""

    seconds: int

    def next_time(self, after: datetime) -> datetime | None:
        return after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Fields(Schedule):
    """A five-field expression, as sets of the values each field matches."""

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

    def next_time(self, after: datetime) -> datetime | None:
        start = after.astimezone(UTC).replace(second=0, microsecond=0)
        try:
            start += timedelta(minutes=1)
            day = start.replace(hour=0, minute=0)
            while day.year <= start.year + SEARCH_YEARS:
                if day.month in self.months and self._day_matches(day):
                    for hour in sorted(self.hours):
                        for minute in sorted(self.minutes):
                            tick = day.replace(hour=hour, minute=minute)
                            if tick >= start:
                                return tick
                day += timedelta(days=1)
        except OverflowError:  # past Python's year 9999: no tick we could name
            return None
        return None


def _number(text: str, names: dict[str, int] | None) -> int:
    """robfig's parseIntOrName / mustParseInt (Go's strconv.Atoi)."""
    if names is not None and text.lower() in names:
        return names[text.lower()]
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise CronError(f'Failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if not -GO_INT_MAX - 1 <= value <= GO_INT_MAX:
        raise CronError(
            f'Failed to parse int from {text}: strconv.Atoi: parsing "{text}": value out of range'
        )
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


def _go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds; CronError with Go's message as robfig wraps it."""

    def fail(why: str) -> CronError:
        return CronError(f"Failed to parse duration @every {text}: time: {why}")

    invalid = f'invalid duration "{text}"'
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0
    if not body:
        raise fail(invalid)
    nanos = 0
    while body:
        match = GO_DURATION_PART.match(body)
        if match is None:
            raise fail(invalid)
        whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3)
        if not whole and not fraction:
            raise fail(invalid)
        if not unit:
            raise fail(f'missing unit in duration "{text}"')
        if unit not in GO_UNITS:
            raise fail(f'unknown unit "{unit}" in duration "{text}"')
        scale = GO_UNITS[unit]
        nanos += int(whole or "0") * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
        if nanos > 2**63:
            raise fail(invalid)
        body = body[match.end() :]
    if nanos > GO_INT_MAX and not text.startswith("-"):
        raise fail(invalid)
    return -nanos if text.startswith("-") else nanos


def parse(spec: str) -> Schedule:
    """Parse a cron spec as pachd's cronutil.ParseCronExpression does; raises CronError."""
    if spec.strip() == "@never":
        return Never()
    if not spec:
        raise CronError("Empty spec string")
    if spec.startswith("@"):
        if spec.startswith("@every "):
            nanos = _go_duration(spec[len("@every ") :])
            return Every(max(1, nanos // 10**9))  # robfig's Every: at least 1s, whole seconds
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
