"""pachd-lite tests (real server subprocess, real pachyderm_sdk client)."""

from __future__ import annotations

from datetime import datetime


def is_set(stamp: datetime | None) -> bool:
    """betterproto returns the epoch for an unset Timestamp; pachd leaves unset what did not happen."""
    return stamp is not None and stamp.timestamp() > 0
