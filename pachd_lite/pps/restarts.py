"""The datums whose user code runs now, so RestartDatum can cancel them (pachd's worker Status).

As pachd's worker does (transform/status.go: Status.Cancel; transform/worker.go: forEachDatum
gives each try of a datum its own cancel), RestartDatum cancels the current try of every running
datum of the job that matches the filters: the user code is killed, the try fails and counts
as one of the datum's ``datum_tries``; the next try (if any) starts at once and the job goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pachd_lite.pps.datum_match import DatumFiles, files_of, match_datum
from pachd_lite.pps.datums import Datum

JobKey = tuple[str, str, str]  # project, pipeline, job id


class TryCancel:
    """The cancel signal of one try: set when the job is stopped or the datum restarted."""

    def __init__(self, job_cancel: threading.Event, files: DatumFiles) -> None:
        self.job_cancel = job_cancel
        self.files = files
        self.restarted = threading.Event()

    def is_set(self) -> bool:
        return self.restarted.is_set() or self.job_cancel.is_set()


class RunningDatums:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_job: dict[JobKey, set[TryCancel]] = {}

    @contextmanager
    def attempt(self, job: JobKey, datum: Datum, job_cancel: threading.Event) -> Iterator[TryCancel]:
        """One try of ``datum``: pass the yielded signal to the user code's run as its ``cancel``."""
        token = TryCancel(job_cancel, files_of(datum))
        with self._lock:
            self._by_job.setdefault(job, set()).add(token)
        try:
            yield token
        finally:
            with self._lock:
                running = self._by_job.get(job)
                if running is not None:
                    running.discard(token)
                    if not running:
                        del self._by_job[job]

    def cancel(self, job: JobKey, filters: list[str]) -> bool:
        """Cancel the running tries of ``job`` whose datum matches ``filters``; False if none."""
        with self._lock:
            hits = [t for t in self._by_job.get(job, ()) if match_datum(filters, t.files)]
        for token in hits:
            token.restarted.set()
        return bool(hits)
