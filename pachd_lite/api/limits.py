"""How many RPCs of each kind may run at once, so long waits never take every RPC thread.

Subscriptions and waits (SubscribeCommit, InspectCommit with ``wait``, GetLogs with ``follow``…)
hold a thread for as long as the client likes; ordinary calls return quickly. Each kind has its
own number of slots and the thread pool has room for both plus a reserve, so health checks and
ordinary calls always find a thread. A call over its kind's limit is refused at once with
RESOURCE_EXHAUSTED instead of queueing behind the waits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pachd_lite.errors import ResourceExhausted

ORDINARY_SLOTS = 128
WAIT_SLOTS = 256
RESERVE_THREADS = 8  # never taken by pachd's own services: health checks always get a thread
THREADS = ORDINARY_SLOTS + WAIT_SLOTS + RESERVE_THREADS


def _always(_req: Any) -> bool:
    return True


def _waits(req: Any) -> bool:
    return bool(getattr(req, "wait", False))


def _follows(req: Any) -> bool:
    return bool(getattr(req, "follow", False))


# RPC path -> whether this request may block for as long as the client wants
LONG_LIVED: dict[str, Callable[[Any], bool]] = {
    "/pfs_v2.API/SubscribeCommit": _always,
    "/pfs_v2.API/InspectCommit": _waits,
    "/pfs_v2.API/InspectCommitSet": _waits,
    "/pps_v2.API/SubscribeJob": _always,
    "/pps_v2.API/InspectJob": _waits,
    "/pps_v2.API/InspectJobSet": _waits,
    "/pps_v2.API/GetLogs": _follows,
}


class CallSlots:
    """Counts running calls per kind; :meth:`take` refuses one over its kind's limit."""

    def __init__(self, ordinary: int = ORDINARY_SLOTS, waits: int = WAIT_SLOTS) -> None:
        self.limits = {"ordinary": ordinary, "wait": waits}
        self._free = {
            "ordinary": threading.BoundedSemaphore(ordinary),
            "wait": threading.BoundedSemaphore(waits),
        }

    @staticmethod
    def kind(method: str, request: Any) -> str:
        long_lived = LONG_LIVED.get(method)
        return "wait" if long_lived is not None and long_lived(request) else "ordinary"

    @contextmanager
    def take(self, method: str, request: Any) -> Iterator[None]:
        kind = self.kind(method, request)
        free = self._free[kind]
        if not free.acquire(blocking=False):
            what = "subscriptions and waits" if kind == "wait" else "calls"
            raise ResourceExhausted(
                f"{method}: pachd-lite is already serving {self.limits[kind]} concurrent {what} "
                "(its limit); retry later or close idle ones"
            )
        try:
            yield
        finally:
            free.release()
