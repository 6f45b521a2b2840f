"""Datum batching: the pachyderm.worker.Worker service and the loop that drives one user process.

Public API (stable; the PPS core calls it):

    run_batched(transform: pps.Transform, env: Mapping[str, str], sandbox: Path,
                datums: Sequence[D],
                prepare_datum: Callable[[D], Mapping[str, str]],
                finish_datum: Callable[[D, str | None], None],
                on_log: Callable[[str, D | None], None] | None = None, *,
                datum_timeout: float | None = None, cancel: threading.Event | None = None,
                tail_lines: int = 50, admin_token: str = "", run_as: RunAs | None = None,
                attempt: Callable[[D], ContextManager[TryCancel]] | None = None,
                on_worker_log: Callable[[str, D | None], None] | None = None) -> BatchResult[D]

    Starts a gRPC server on a free localhost port serving /pachyderm.worker.Worker/{NextDatum,
    Status,Cancel}, then the user process once (`transform.cmd`/`stdin` via user_process.UserProcess,
    `env` + PPS_WORKER_GRPC_PORT, pachyderm_sdk's /pfs/.env redirected to <sandbox>/pfs/.env).
    Protocol, as pachd's worker:
      - NextDatum(error="") first call = "ready". pachd-lite calls `prepare_datum(d)` (the core
        swaps d's inputs into <sandbox>/pfs/<input>/ and returns d's env, e.g. datums.datum_env),
        writes <sandbox>/pfs/.env with `env` + that, and answers with the env list.
      - The next NextDatum call reports the previous datum: error != "" means it failed.
        `finish_datum(d, error_or_None)` is called (the core collects and clears /pfs/out) before
        the next datum is prepared. An exception from prepare/finish fails that datum.
      - When no datums remain the call is left pending and the process group is killed, as
        pachd does. If the process exits while datums remain: "user code exited prematurely";
        the datum in progress fails with that reason, the rest are NOT_RUN and BatchResult.error
        says so. A datum running longer than `datum_timeout` fails, the process is killed and a
        new one is started for the remaining datums. `cancel` kills it all.
      - Each datum's try runs inside `attempt(d)` (e.g. RunningDatums.attempt, so RestartDatum
        finds it). Once the yielded signal's `restarted` is set - or the Cancel RPC names the
        job (`job_id` = PACH_JOB_ID) and the datum (`data_filters`, common.MatchDatum), as
        pachd's Status.Cancel - the datum fails with "context canceled", the process is killed
        and a new one goes on with the rest (pachd's handleDatumSetBatching restarts user code
        after a datum's error). Without `attempt` each try gets a signal with no files.
    Retries (`datum_tries`) are the caller's: run the failed datums again with a new call, which
    restarts the user process, as pachd restarts user code after a failed datum.
    `on_log(line, datum)` gets every output line with the datum in progress (None between datums);
    `on_worker_log(line, datum)` gets pachd-lite's own lines about it (premature exit, timeout),
    which are not the user code's output.

Access: the service answers only the batch's own user code — the caller's TCP connection must
belong to the user process or one of its descendants (looked up in /proc by the connection's
ports; pachyderm_sdk's worker channel sends no credentials, so the process is the credential) —
or a caller sending `admin_token` (the server's auth token) as `authn-token` metadata; anyone
else gets UNAUTHENTICATED. The auth token is never sent back: NextDatum's env and the .env file
leave out PACH_TOKEN/PACH_PYTHON_AUTH_TOKEN (the user process has them from its start).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from contextlib import AbstractContextManager as ContextManager
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Generic, TypeVar

import betterproto.lib.google.protobuf as pb
import grpc
import psutil
from pachyderm_sdk.api import pps
from pachyderm_sdk.api import worker as worker_api

from pachd_lite.pps.datum_match import match_datum
from pachd_lite.pps.restarts import TryCancel
from pachd_lite.pps.run_as import RunAs
from pachd_lite.pps.user_env import TOKEN_ENV_VARS, write_dotenv
from pachd_lite.pps.user_process import UserProcess

__all__ = ["BatchResult", "CANCELED", "DatumOutcome", "DatumState", "PREMATURE_EXIT", "run_batched"]

log = logging.getLogger(__name__)

D = TypeVar("D")
SERVICE = "pachyderm.worker.Worker"
PREMATURE_EXIT = "user code exited prematurely"
CANCELED = "context canceled"  # a restarted datum's error, as pachd's cancelled datum context


class DatumState(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    NOT_RUN = "not_run"


@dataclass
class DatumOutcome(Generic[D]):
    datum: D
    state: DatumState = DatumState.NOT_RUN
    error: str = ""
    duration_s: float = 0.0
    pid: int | None = None  # the user process that handled it


@dataclass
class BatchResult(Generic[D]):
    outcomes: list[DatumOutcome[D]]
    error: str = ""  # set when the batch as a whole went wrong (premature exit, cancel, no start)
    pids: list[int] = field(default_factory=list)  # user processes started, in order
    log_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error and all(o.state == DatumState.SUCCESS for o in self.outcomes)


class _Batch(Generic[D]):
    def __init__(
        self,
        transform: pps.Transform,
        env: Mapping[str, str],
        sandbox: Path,
        datums: Sequence[D],
        prepare_datum: Callable[[D], Mapping[str, str]],
        finish_datum: Callable[[D, str | None], None],
        on_log: Callable[[str, D | None], None] | None,
        datum_timeout: float | None,
        cancel: threading.Event,
        tail_lines: int,
        admin_token: str = "",
        run_as: RunAs | None = None,
        attempt: Callable[[D], ContextManager[TryCancel]] | None = None,
        on_worker_log: Callable[[str, D | None], None] | None = None,
    ) -> None:
        self.on_worker_log = on_worker_log
        self.transform, self.env, self.sandbox = transform, dict(env), Path(sandbox)
        self.prepare_datum, self.finish_datum, self.on_log = prepare_datum, finish_datum, on_log
        self.datum_timeout, self.cancel, self.tail_lines = datum_timeout, cancel, tail_lines
        self.outcomes = [DatumOutcome(d) for d in datums]
        self.lock = threading.RLock()
        self.next_index = 0
        self.current: int | None = None
        self.current_started = 0.0
        self.all_done = threading.Event()
        self.process_gone = threading.Event()
        self.proc: UserProcess | None = None
        self.pids: list[int] = []
        self.log_tail: list[str] = []
        self.admin_token = admin_token
        self.run_as = run_as
        self.attempt = attempt
        self.try_signal: TryCancel | None = None  # the current datum's try
        self.try_scope = ExitStack()
        self.port = 0
        # peer -> (pid, fd, "socket:[inode]") of a connection the current user process holds
        self.trusted_peers: dict[str, tuple[int, int, str]] = {}

    # --- access -------------------------------------------------------------------------------

    def _authorize(self, context: grpc.ServicerContext) -> None:
        if self.admin_token:
            sent = dict(context.invocation_metadata()).get("authn-token", "")
            if isinstance(sent, str) and hmac.compare_digest(sent.encode(), self.admin_token.encode()):
                return
        peer = urllib.parse.unquote(context.peer())  # "ipv6:%5B::1%5D:PORT"
        if self._still_trusted(peer):
            return  # the SDK keeps its connection: one full lookup per connection
        owner = self._from_user_code(peer)
        if owner is not None:
            self.trusted_peers[peer] = owner
            return
        context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "the worker API answers only the job's own user code (or a caller with the auth token "
            "in authn-token)",
        )

    def _still_trusted(self, peer: str) -> bool:
        """The cached owner of ``peer`` still holds the very socket (same fd, same inode): a new
        connection reusing the port is another socket, so the verdict cannot pass to it."""
        owner = self.trusted_peers.get(peer)
        if owner is None:
            return False
        pid, fd, link = owner
        try:
            return os.readlink(f"/proc/{pid}/fd/{fd}") == link
        except OSError:
            return False

    def _from_user_code(self, peer: str) -> tuple[int, int, str] | None:
        """(pid, fd, fd link) of our user code's process that holds the connection from ``peer``
        ("ipv4:127.0.0.1:PORT"); None if no process of the user code holds it."""
        proc = self.proc
        try:
            client_port = int(peer.rsplit(":", 1)[1])
        except (IndexError, ValueError):
            return None
        if proc is None or not peer.startswith(("ipv4:127.", "ipv6:[::1]", "ipv6:[::ffff:127.")):
            return None
        try:
            leader = psutil.Process(proc.pid)
            family = [leader, *leader.children(recursive=True)]
        except psutil.Error:
            return None
        for member in family:
            try:
                connections = member.net_connections(kind="tcp")
            except psutil.Error:
                continue
            for c in connections:
                if c.laddr and c.raddr and c.laddr.port == client_port and c.raddr.port == self.port:
                    try:
                        return member.pid, c.fd, os.readlink(f"/proc/{member.pid}/fd/{c.fd}")
                    except OSError:
                        return member.pid, c.fd, ""  # no /proc/<pid>/fd: trusted once, not cached
        return None

    # --- gRPC handlers (one user process calls them, one call at a time) ---

    def next_datum(self, request: worker_api.NextDatumRequest, context: grpc.ServicerContext):
        self._authorize(context)
        if self.proc is not None:
            self.proc.drain()  # the finished datum's last log lines are still its own
        with self.lock:
            if self.current is not None:
                self._finish_current(request.error or None)
            while self.next_index < len(self.outcomes) and not self.cancel.is_set():
                i = self.next_index
                self.next_index += 1
                response = self._start(i)
                if response is not None:
                    return response
            self.all_done.set()
        # No datums left: pachd never answers this call; it kills the user code.
        self.process_gone.wait()
        context.abort(grpc.StatusCode.CANCELLED, "no more datums")

    def status(self, request: pb.Empty, context: grpc.ServicerContext) -> pps.WorkerStatus:
        self._authorize(context)
        return pps.WorkerStatus(worker_id="pachd-lite", job_id=self.env.get("PACH_JOB_ID", ""))

    def cancel_rpc(self, request: worker_api.CancelRequest, context: grpc.ServicerContext):
        """pachd's Status.Cancel: restart the datum in progress if it is of the job and matches."""
        self._authorize(context)
        with self.lock:
            signal = self.try_signal
            if (
                signal is None
                or request.job_id != self.env.get("PACH_JOB_ID", "")
                or not match_datum(list(request.data_filters), signal.files)
            ):
                return worker_api.CancelResponse(success=False)
            signal.restarted.set()
        return worker_api.CancelResponse(success=True)

    # --- datum bookkeeping (called with self.lock held) ---

    def _start(self, i: int) -> worker_api.NextDatumResponse | None:
        outcome = self.outcomes[i]
        outcome.pid = self.proc.pid if self.proc else None
        started = time.monotonic()
        try:
            datum_env = dict(self.prepare_datum(outcome.datum))
            full = {k: v for k, v in {**self.env, **datum_env}.items() if k not in TOKEN_ENV_VARS}
            write_dotenv(self.sandbox, full)
        except Exception as e:
            log.exception("preparing datum %d failed", i)
            self._record(i, f"preparing the datum failed: {e}", started)
            return None
        self.current, self.current_started = i, started
        if self.attempt is not None:
            self.try_signal = self.try_scope.enter_context(self.attempt(outcome.datum))
        else:
            self.try_signal = TryCancel(self.cancel, ())
        return worker_api.NextDatumResponse(env=[f"{k}={v}" for k, v in full.items()])

    def _finish_current(self, error: str | None) -> None:
        i, self.current = self.current, None
        assert i is not None
        self._end_try()
        try:
            self.finish_datum(self.outcomes[i].datum, error)
        except Exception as e:
            log.exception("finishing datum %d failed", i)
            error = f"{error}; " if error else ""
            error += f"collecting the datum's output failed: {e}"
        self._record(i, error, self.current_started)

    def _end_try(self) -> None:
        self.try_signal = None
        self.try_scope.close()

    def _record(self, i: int, error: str | None, started: float) -> None:
        o = self.outcomes[i]
        o.state = DatumState.FAILED if error else DatumState.SUCCESS
        o.error = error or ""
        o.duration_s = time.monotonic() - started

    def current_datum(self) -> D | None:
        i = self.current
        return self.outcomes[i].datum if i is not None else None

    # --- the driver ---

    def _emit(self, line: str) -> None:
        if self.on_log is not None:
            self.on_log(line, self.current_datum())

    def _worker_line(self, line: str) -> None:
        if self.on_worker_log is not None:
            self.on_worker_log(line, self.current_datum())

    def run(self) -> BatchResult[D]:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="pachd-lite-worker")
        )
        handlers = {
            "NextDatum": grpc.unary_unary_rpc_method_handler(
                self.next_datum, worker_api.NextDatumRequest.FromString, bytes
            ),
            "Status": grpc.unary_unary_rpc_method_handler(self.status, pb.Empty.FromString, bytes),
            "Cancel": grpc.unary_unary_rpc_method_handler(
                self.cancel_rpc, worker_api.CancelRequest.FromString, bytes
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        port = self.port = server.add_insecure_port("localhost:0")
        server.start()
        error = ""
        try:
            while not error and self.next_index < len(self.outcomes) and not self.cancel.is_set():
                error = self._run_one_process(port)
            if self.cancel.is_set() and not error:
                error = "datum batching cancelled"
        finally:
            self.process_gone.set()
            server.stop(grace=0.5).wait()
            with self.lock:
                self._end_try()
        return BatchResult(self.outcomes, error, self.pids, self.log_tail)

    def _run_one_process(self, port: int) -> str:
        """Drive one user process; "" if it ended as planned (done or a datum timed out)."""
        self.all_done.clear()
        self.process_gone.clear()
        try:
            proc = UserProcess(
                list(self.transform.cmd),
                sandbox=self.sandbox,
                env={**self.env, "PPS_WORKER_GRPC_PORT": str(port)},
                stdin_lines=list(self.transform.stdin),
                cwd=self.transform.working_dir or None,
                on_log=self._emit,
                tail_lines=self.tail_lines,
                python_dotenv_shim=True,
                run_as=self.run_as,
            )
        except (OSError, ValueError) as e:
            with self.lock:
                self.next_index = len(self.outcomes)
            return f"could not start user code {list(self.transform.cmd)!r}: {e}"
        self.trusted_peers = {}
        self.proc = proc
        self.pids.append(proc.pid)
        try:
            return self._drive(proc)
        finally:
            proc.kill()
            self.log_tail = list(proc.log_tail)
            self.process_gone.set()

    def _drive(self, proc: UserProcess) -> str:
        while True:
            code = proc.wait(0.05)
            with self.lock:
                if self.all_done.is_set():
                    return ""
                if code is not None:
                    reason = f"{PREMATURE_EXIT} (exit code {code})"
                    self._worker_line(reason)
                    self._abandon(reason)
                    return reason
                if self.cancel.is_set():
                    self._abandon("datum batching cancelled")
                    return "datum batching cancelled"
                if (
                    self.datum_timeout is not None
                    and self.current is not None
                    and time.monotonic() - self.current_started > self.datum_timeout
                ):
                    reason = f"datum timed out after {self.datum_timeout:g}s"
                    self._worker_line(reason)
                    self._finish_current(reason)
                    return ""  # the caller starts a new process for the rest
                if self.try_signal is not None and self.try_signal.restarted.is_set():
                    self._finish_current(CANCELED)  # RestartDatum: retried by the caller
                    return ""

    def _abandon(self, reason: str) -> None:
        """Fail the datum in progress with `reason`; the unstarted ones stay NOT_RUN."""
        if self.current is not None:
            self._finish_current(reason)
        self.next_index = len(self.outcomes)


def run_batched(
    transform: pps.Transform,
    env: Mapping[str, str],
    sandbox: Path | str,
    datums: Sequence[D],
    prepare_datum: Callable[[D], Mapping[str, str]],
    finish_datum: Callable[[D, str | None], None],
    on_log: Callable[[str, D | None], None] | None = None,
    *,
    datum_timeout: float | None = None,
    cancel: threading.Event | None = None,
    tail_lines: int = 50,
    admin_token: str = "",
    run_as: RunAs | None = None,
    attempt: Callable[[D], ContextManager[TryCancel]] | None = None,
    on_worker_log: Callable[[str, D | None], None] | None = None,
) -> BatchResult[D]:
    """Process `datums` with one long-running user process (see module docstring)."""
    batch = _Batch(
        transform,
        env,
        Path(sandbox),
        datums,
        prepare_datum,
        finish_datum,
        on_log,
        datum_timeout,
        cancel or threading.Event(),
        tail_lines,
        admin_token,
        run_as,
        attempt,
        on_worker_log,
    )
    return batch.run()
