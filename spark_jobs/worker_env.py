"""Spark/ETL specifics of the Pachyderm worker environment: settings, datum paths, datum batching.

The generic job facts (pipeline, job, commits, pachd address) are ``pachflow.worker``'s.

Works the same in a real Pachyderm worker, in pachd-lite (which runs the spec's command on
the host with ``/pfs/...`` mapped into a sandbox) and in a plain shell (no Pachyderm at all).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("pachflow.worker_env")

PFS_ROOT = "/pfs"


def setting(name: str, default: str) -> str:
    """A job setting from the environment (the spec's ``transform.env``); blank counts as unset."""
    return os.environ.get(name, "").strip() or default


def resolve_datum_path(value: str, input_name: str, input_root: Path) -> Path:
    """Local path of a datum announced as ``/pfs/<input>/<matched path>``.

    In a real worker the value exists as is. pachd-lite maps ``/pfs`` into a sandbox, so when
    the literal path is missing the part after ``/pfs/<input>`` is re-rooted at ``input_root``
    (the job's ``--input`` argument, already mapped).
    """
    literal = Path(value)
    if literal.exists():
        return literal
    prefix = f"{PFS_ROOT}/{input_name}"
    if value == prefix or value.startswith(prefix + "/"):
        return input_root / value[len(prefix) :].lstrip("/")
    return input_root / value.lstrip("/")


def _apply_env_lines(lines: list[str]) -> None:
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key:
            os.environ[key.strip()] = value


def _load_dotenv_files(input_root: Path) -> None:
    from dotenv import load_dotenv

    # /pfs/.env in a worker; in pachd-lite the sandbox's pfs/.env beside the input directory.
    for candidate in (Path(PFS_ROOT) / ".env", input_root.parent / ".env"):
        if candidate.is_file():
            load_dotenv(candidate, override=True)


def in_batching_worker() -> bool:
    return bool(os.environ.get("PPS_WORKER_GRPC_PORT"))


def batched_datums(input_name: str, input_root: Path) -> Iterator[Callable[[BaseException | None], None]]:
    """Drive datum batching like ``pachyderm_sdk.batch_all_datums`` (over spark_jobs.worker_client).

    Yields once per datum after NextDatum has set the datum's environment; the consumer calls
    the yielded ``done(error)`` so the next NextDatum reports the previous datum's error (as the
    SDK does). Unlike the SDK decorator it also applies the env list of NextDatumResponse and a
    sandboxed ``.env``, so the same code runs under pachd-lite on the host. The worker ends the
    process when no datum is left.
    """
    from spark_jobs.worker_client import WorkerClient

    worker = WorkerClient()
    error = ""
    while True:
        env = worker.next_datum(error=error)
        _load_dotenv_files(input_root)
        _apply_env_lines(env)  # the response is this datum's own; it wins
        outcome: list[BaseException | None] = [None]

        def done(exc: BaseException | None, outcome: list[BaseException | None] = outcome) -> None:
            outcome[0] = exc

        yield done
        error = repr(outcome[0]) if outcome[0] is not None else ""
