"""The rollback operator's closing log line: what moved, or plainly that nothing had to."""

from __future__ import annotations

from pachflow.operators.rollback import outcome_line


def _result(from_version, to_version, alias_moved, data=None, commit_set=None):
    return {
        "model_name": "m",
        "alias": "champion",
        "from_version": from_version,
        "to_version": to_version,
        "alias_moved": alias_moved,
        "data": data,
        "commit_set": commit_set,
    }


def test_a_rollback_to_the_current_holder_says_nothing_moved():
    assert (
        outcome_line(_result("1", "1", False)) == "Nothing to roll back: m@champion already holds version 1"
    )
    same = [{"repo": "raw", "moved": False}]
    assert outcome_line(_result("1", "1", False, data=same)).endswith(
        "already holds version 1, and every source branch is already at its commit"
    )


def test_a_real_rollback_names_both_versions_and_the_rerun():
    moved = [{"repo": "raw", "moved": True}, {"repo": "other", "moved": False}]
    assert outcome_line(_result("2", "1", True, data=moved, commit_set="abc")) == (
        "Rolled back: alias m@champion moved from version 2 to 1, 1 branch(es) moved, "
        "pipelines re-run in commit set abc"
    )
    assert outcome_line(_result(None, "3", True)) == (
        "Rolled back: alias m@champion created on version 3, 0 branch(es) moved"
    )
    assert outcome_line(_result("1", "1", False, data=moved, commit_set="abc")).startswith(
        "Rolled back: m@champion already holds version 1 (not moved), 1 branch(es) moved"
    )
