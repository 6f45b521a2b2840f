"""Cron specs and trigger sizes read as pachd reads them (robfig/cron v1 ParseStandard via
src/internal/cronutil/cronutil.go; docker/go-units FromHumanSize via server_branch.go validateTrigger)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pachd_lite import cronspec
from pachd_lite.pfs.triggers import parse_size


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("spec", "after", "tick"),
    [
        ("*/15 * * * *", "2026-01-01T10:07:30", "2026-01-01T10:15:00"),
        ("*/15 * * * *", "2026-01-01T10:15:00", "2026-01-01T10:30:00"),  # strictly after
        ("30 2 * * mon-fri", "2026-01-03T00:00:00", "2026-01-05T02:30:00"),  # Sat -> Mon
        ("0 0 13 * 5", "2026-02-01T00:00:00", "2026-02-06T00:00:00"),  # day 13 OR Friday
        ("0 0 * * sun", "2026-01-01T00:00:00", "2026-01-04T00:00:00"),
        ("@monthly", "2026-01-15T12:00:00", "2026-02-01T00:00:00"),
        ("@every 1h30m", "2026-01-01T10:00:00.700000", "2026-01-01T11:30:00"),
        ("@every 500ms", "2026-01-01T10:00:00.700000", "2026-01-01T10:00:01"),  # at least a second
        ("@never", "2026-01-01T00:00:00", "9999-01-01T00:00:00"),
    ],
)
def test_next_tick(spec, after, tick):
    assert cronspec.parse(spec).next(ts(after)) == ts(tick)


def test_no_tick_within_five_years_is_none():
    assert cronspec.parse("0 0 30 2 *").next(ts("2026-01-01T00:00:00")) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "Empty spec string"),
        ("* * * * * *", "Expected exactly 5 fields, found 6: * * * * * *"),
        ("61 * * * *", "End of range (61) above maximum (59): 61"),
        ("5-1 * * * *", "Beginning of range (5) beyond end of range (1): 5-1"),
        ("x * * * *", 'Failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ("@often", "Unrecognized descriptor: @often"),
        ("@every soon", 'Failed to parse duration @every soon: time: invalid duration "soon"'),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(cronspec.CronError) as err:
        cronspec.parse(spec)
    assert str(err.value) == message


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
