"""Cron input schedules as pachd 2.12 parses them (src/internal/cronutil/cronutil.go: robfig/cron
v1.2.0's ParseStandard plus `@never`) and the tick file names of src/server/pps/server/monitor.go."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pachd_lite.pps.cron_spec import NEVER, CronSpecError, parse_schedule, parse_tick_name, tick_name

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        ("@every 1s", T0, datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC)),
        ("@every 1m30s", T0, datetime(2026, 3, 2, 10, 1, 30, tzinfo=UTC)),
        ("@every 1.5h", T0, datetime(2026, 3, 2, 11, 30, tzinfo=UTC)),
        ("@every 500ms", T0, datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC)),  # under 1s: 1s
        ("@every 2500ms", T0.replace(microsecond=700000), datetime(2026, 3, 2, 10, 0, 2, tzinfo=UTC)),
        ("*/5 * * * *", T0, datetime(2026, 3, 2, 10, 5, tzinfo=UTC)),  # strictly after
        ("0 9 * * MON-FRI", T0, datetime(2026, 3, 3, 9, 0, tzinfo=UTC)),
        ("0 0 1 JAN ?", T0, datetime(2027, 1, 1, tzinfo=UTC)),
        ("@hourly", T0, datetime(2026, 3, 2, 11, 0, tzinfo=UTC)),
        ("@daily", T0, datetime(2026, 3, 3, tzinfo=UTC)),
        ("@weekly", T0, datetime(2026, 3, 8, tzinfo=UTC)),
        ("@monthly", T0, datetime(2026, 4, 1, tzinfo=UTC)),
        ("@yearly", T0, datetime(2027, 1, 1, tzinfo=UTC)),
        ("@never", T0, NEVER),
        ("0 0 30 2 *", T0, NEVER),  # no such day: robfig's zero time, no tick
    ],
)
def test_next_tick(spec, after, expected):
    assert parse_schedule(spec).next(after) == expected


@pytest.mark.parametrize(
    "spec", ["", "* * * *", "0 * * * * *", "@every", "@every soon", "@every 5d", "@fortnightly", "0 0 L * *",
             "61 * * * *", "0 0 * FOO *", "H * * * *"],
)  # fmt: skip
def test_specs_pachd_refuses(spec):
    with pytest.raises(CronSpecError):
        parse_schedule(spec)


def test_tick_names_are_rfc3339_utc_whole_seconds():
    t = datetime(2026, 3, 2, 10, 0, 1, 999999, tzinfo=UTC)
    assert tick_name(t) == "2026-03-02T10:00:01Z"
    assert parse_tick_name("2026-03-02T10:00:01Z") == t.replace(microsecond=0)
    assert parse_tick_name("notes.txt") is None
