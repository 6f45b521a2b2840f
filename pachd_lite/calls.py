"""The budget of the RPC a thread is serving: its deadline and whether the client is still there.

The RPC layer binds each call (:func:`bound`); long loops in the domain call :func:`check`, which
raises :class:`~pachd_lite.errors.DeadlineExceeded` once the client's deadline has passed or the
client has gone, so abandoned work stops instead of running on. Outside an RPC (the scheduler's
own threads) :func:`check` does nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pachd_lite.errors import DeadlineExceeded

ALIVE_EVERY = 0.05  # seconds between asking gRPC whether the client is still connected

_local = threading.local()


class _Budget:
    __slots__ = ("alive", "deadline", "method", "next_alive_check")

    def __init__(self, method: str, deadline: float | None, alive: Callable[[], bool]) -> None:
        self.method = method
        self.deadline = deadline
        self.alive = alive
        self.next_alive_check = 0.0


@contextmanager
def bound(method: str, time_remaining: float | None, alive: Callable[[], bool]) -> Iterator[None]:
    """Make :func:`check` in this thread enforce one call's deadline (seconds left, None: none)."""
    previous = getattr(_local, "budget", None)
    now = time.monotonic()
    _local.budget = _Budget(method, None if time_remaining is None else now + time_remaining, alive)
    try:
        yield
    finally:
        _local.budget = previous


def check() -> None:
    """Raise DeadlineExceeded if the current call's deadline passed or its client went away."""
    budget = getattr(_local, "budget", None)
    if budget is None:
        return
    now = time.monotonic()
    if budget.deadline is not None and now >= budget.deadline:
        raise DeadlineExceeded(f"{budget.method}: the call's deadline passed; the server stopped its work")
    if now >= budget.next_alive_check:
        budget.next_alive_check = now + ALIVE_EVERY
        if not budget.alive():
            raise DeadlineExceeded(
                f"{budget.method}: the client cancelled the call; the server stopped its work"
            )
