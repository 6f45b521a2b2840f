"""The worker's own log lines and pachd's datum filter, as pure functions."""

from __future__ import annotations

import base64

import pytest

from pachd_lite.pps.datum_match import match_datum
from pachd_lite.pps.runner import RunResult
from pachd_lite.pps.worker_log import ended_message, go_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (1e-7, "100ns"), (2.5e-6, "2.5µs"), (0.0018177, "1.8177ms"), (1.5, "1.5s"), (90, "1m30s"),
     (3600, "1h0m0s"), (3723.25, "1h2m3.25s"), (-0.25, "-250ms")],
)  # fmt: skip
def test_go_duration_prints_as_go_time_duration_string(seconds, text):
    """Go's time.Duration.String(), which pachd's driver uses for "after %v"."""
    assert go_duration(seconds) == text


@pytest.mark.parametrize(
    ("result", "line"),
    [
        (RunResult(0, True, 1.5), "finished running user code after 1.5s"),
        (RunResult(3, True, 2), "finished running user code after 2s"),  # an accept_return_code
        (RunResult(1, False, 0.5), "errored running user code after 500ms: exit status 1"),
        (RunResult(-9, False, 2, cancelled=True),
         "errored running user code after 2s: signal: killed because context canceled"),
        (RunResult(-9, False, 5, timed_out=True),
         "errored running user code after 5s: signal: killed because context deadline exceeded"),
        (RunResult(-15, False, 1), "errored running user code after 1s: signal: terminated"),
        (RunResult(None, False, 0.001, error="could not start user code ['nope']: not found"),
         "errored running user code after 1ms: could not start user code ['nope']: not found"),
    ],
)  # fmt: skip
def test_ended_message_is_pachds_driver_line(result, line):
    """src/server/worker/driver/driver.go (RunUserCode's deferred Logf/Errf)."""
    assert ended_message(result) == line


def test_match_datum_is_common_match_datum():
    """src/server/worker/common/common.go (MatchDatum): every filter names a path, hex or base64 hash."""
    files = [("/a", "0a0b"), ("/b", "ff")]
    assert match_datum([], [])
    assert match_datum(["/a", "ff"], files)
    assert match_datum([base64.b64encode(bytes.fromhex("0a0b")).decode()], files)
    assert not match_datum(["/a", "/c"], files)
    assert not match_datum(["/a"], [])  # a line without a datum matches no filter
