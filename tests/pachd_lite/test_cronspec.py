"""Cron specs, tick file names and trigger sizes read as pachd 2.12 reads them: robfig/cron v1.2.0's
ParseStandard plus `@never` (src/internal/cronutil/cronutil.go; used by validateInput in
src/server/pps/server/api_server.go and by validateTrigger in src/server/pfs/server/server_branch.go),
the tick file names of src/server/pps/server/monitor.go (cronTick, getLatestCronTime), and
docker/go-units FromHumanSize for trigger sizes (server_branch.go validateTrigger)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pachd_lite import cronspec
from pachd_lite.pfs.triggers import parse_size
from pachd_lite.pps.cron import parse_tick_name, tick_name

GO_ZERO_TIME = -62135596800.0  # 0001-01-01T00:00:00Z, what a trigger's rate limit counts from first


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "after", "tick"),
    [
        ("*/15 * * * *", "2026-01-01T10:07:30", "2026-01-01T10:15:00"),
        ("*/15 * * * *", "2026-01-01T10:15:00", "2026-01-01T10:30:00"),  # strictly after
        ("*/5 * * * *", "2026-03-02T10:00:00", "2026-03-02T10:05:00"),
        ("30 2 * * mon-fri", "2026-01-03T00:00:00", "2026-01-05T02:30:00"),  # Sat -> Mon
        ("0 9 * * MON-FRI", "2026-03-02T10:00:00", "2026-03-03T09:00:00"),  # Mon after 9 -> Tue
        ("0 0 13 * 5", "2026-02-01T00:00:00", "2026-02-06T00:00:00"),  # day 13 OR Friday
        ("0 0 * * sun", "2026-01-01T00:00:00", "2026-01-04T00:00:00"),
        ("0 0 1 JAN ?", "2026-03-02T10:00:00", "2027-01-01T00:00:00"),
        ("@hourly", "2026-03-02T10:00:00", "2026-03-02T11:00:00"),
        ("@daily", "2026-03-02T10:00:00", "2026-03-03T00:00:00"),
        ("@weekly", "2026-03-02T10:00:00", "2026-03-08T00:00:00"),
        ("@monthly", "2026-01-15T12:00:00", "2026-02-01T00:00:00"),
        ("@yearly", "2026-03-02T10:00:00", "2027-01-01T00:00:00"),
        ("@every 1s", "2026-03-02T10:00:00", "2026-03-02T10:00:01"),
        ("@every 1m30s", "2026-03-02T10:00:00", "2026-03-02T10:01:30"),
        ("@every 1.5h", "2026-03-02T10:00:00", "2026-03-02T11:30:00"),
        ("@every 1h30m", "2026-01-01T10:00:00.700000", "2026-01-01T11:30:00"),  # from the whole second
        ("@every 2500ms", "2026-03-02T10:00:00.700000", "2026-03-02T10:00:02"),  # whole seconds
        ("@every 500ms", "2026-01-01T10:00:00.700000", "2026-01-01T10:00:01"),  # at least a second
        ("@every -5s", "2026-01-01T10:00:00", "2026-01-01T10:00:01"),
        ("@never", "2026-01-01T00:00:00", "9999-01-01T00:00:00"),
        (" @never ", "2026-01-01T00:00:00", "9999-01-01T00:00:00"),  # pachd trims for @never only
    ],
)
def test_next_tick(spec, after, tick):
    schedule = cronspec.parse(spec)
    assert schedule.next_time(at(after)) == at(tick)
    assert schedule.next(at(after).timestamp()) == at(tick).timestamp()


def test_no_tick_within_five_years_is_none():
    """robfig returns Go's zero time; pachd's monitor then makes no more ticks."""
    schedule = cronspec.parse("0 0 30 2 *")
    assert schedule.next(at("2026-01-01T00:00:00").timestamp()) is None
    assert schedule.next_time(at("2026-01-01T00:00:00")) is None
    assert schedule.next_time(at("9998-06-01T00:00:00")) is None  # the search passes Python's year 9999


def test_ticks_from_go_zero_time():
    assert cronspec.parse("@hourly").next(GO_ZERO_TIME) == GO_ZERO_TIME + 3600
    assert cronspec.parse("@every 2s").next(GO_ZERO_TIME) == GO_ZERO_TIME + 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "Empty spec string"),
        ("* * * *", "Expected exactly 5 fields, found 4: * * * *"),
        ("* * * * * *", "Expected exactly 5 fields, found 6: * * * * * *"),
        ("0 * * * * *", "Expected exactly 5 fields, found 6: 0 * * * * *"),  # no seconds field
        (" @daily", "Expected exactly 5 fields, found 1:  @daily"),
        ("61 * * * *", "End of range (61) above maximum (59): 61"),
        ("0 0 0 * *", "Beginning of range (0) below minimum (1): 0"),
        ("5-1 * * * *", "Beginning of range (5) beyond end of range (1): 5-1"),
        ("1-2-3 * * * *", "Too many hyphens: 1-2-3"),
        ("*/2/3 * * * *", "Too many slashes: */2/3"),
        ("*/0 * * * *", "Step of range should be a positive number: */0"),
        ("-1 * * * *", 'Failed to parse int from : strconv.Atoi: parsing "": invalid syntax'),
        (
            "9" * 20 + " * * * *",
            f'Failed to parse int from {"9" * 20}: strconv.Atoi: parsing "{"9" * 20}": value out of range',
        ),
        ("*/-1 * * * *", "Negative number (-1) not allowed: -1"),
        ("x * * * *", 'Failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ("H * * * *", 'Failed to parse int from H: strconv.Atoi: parsing "H": invalid syntax'),
        ("0 0 L * *", 'Failed to parse int from L: strconv.Atoi: parsing "L": invalid syntax'),
        ("0 0 * FOO *", 'Failed to parse int from FOO: strconv.Atoi: parsing "FOO": invalid syntax'),
        ("٣ * * * *", 'Failed to parse int from ٣: strconv.Atoi: parsing "٣": invalid syntax'),  # ASCII only
        ("0 0 * * 1#2", 'Failed to parse int from 1#2: strconv.Atoi: parsing "1#2": invalid syntax'),
        ("@often", "Unrecognized descriptor: @often"),
        ("@fortnightly", "Unrecognized descriptor: @fortnightly"),
        ("@daily ", "Unrecognized descriptor: @daily "),
        ("@every", "Unrecognized descriptor: @every"),
        ("@every ", 'Failed to parse duration @every : time: invalid duration ""'),
        ("@every soon", 'Failed to parse duration @every soon: time: invalid duration "soon"'),
        ("@every 5d", 'Failed to parse duration @every 5d: time: unknown unit "d" in duration "5d"'),
        ("@every 5", 'Failed to parse duration @every 5: time: missing unit in duration "5"'),
        ("@every 1h30", 'Failed to parse duration @every 1h30: time: missing unit in duration "1h30"'),
        ("@every .s", 'Failed to parse duration @every .s: time: invalid duration ".s"'),
        ("@every 1s ", 'Failed to parse duration @every 1s : time: unknown unit "s " in duration "1s "'),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(cronspec.CronError) as err:
        cronspec.parse(spec)
    assert str(err.value) == message


def test_tick_names_are_rfc3339_utc_whole_seconds():
    t = datetime(2026, 3, 2, 10, 0, 1, 999999, tzinfo=UTC)
    assert tick_name(t) == "2026-03-02T10:00:01Z"
    assert parse_tick_name("2026-03-02T10:00:01Z") == t.replace(microsecond=0)
    assert parse_tick_name("notes.txt") is None


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10", 10),
        ("1b", 1),
        ("1K", 1000),
        ("1KB", 1000),
        ("1KiB", 1000),
        ("1 MB", 10**6),
        ("1.5g", 1_500_000_000),
    ],
)
def test_sizes_are_decimal(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [("MB", "invalid size: 'MB'"), ("-1", "invalid size: '-1'"), ("1X", "invalid suffix: 'x'"),
     ("1KBB", "invalid suffix: 'kbb'"), ("1.2.3K", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax')],
)  # fmt: skip
def test_bad_sizes(text, message):
    with pytest.raises(ValueError) as err:
        parse_size(text)
    assert str(err.value) == message
