"""A failed job's error shows once in the sensor's log: log-tail lines the reason holds are dropped."""

from __future__ import annotations

from pachflow.waiting import new_log_lines


def test_log_tail_lines_already_in_the_reason_or_repeated_are_dropped():
    error = "split_data failed: raw_data@c0ffee:/junk.csv: line 1 is not a PaySim header"
    reason = f"datum d1 failed: exit code 1\n{error}"
    tail = [f"[datum d1] {error}", "[datum d1] reading /pfs/raw_data", f"[datum d1] {error}", "[datum d1] reading /pfs/raw_data", "[master] job failed"]  # fmt: skip
    assert new_log_lines(tail, reason) == ["[datum d1] reading /pfs/raw_data", "[master] job failed"]
