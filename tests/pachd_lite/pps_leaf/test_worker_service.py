"""Datum batching with a real user process using pachyderm_sdk.batch_all_datums
(pachd_lite.pps.worker_service); the SDK's own Worker client talks to our gRPC service."""

from __future__ import annotations

import shutil
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from pachyderm_sdk.api import pps
from pachyderm_sdk.api.worker import WorkerStub

from pachd_lite.pps.restarts import TryCancel
from pachd_lite.pps.worker_service import CANCELED, PREMATURE_EXIT, DatumState, run_batched

USER_CODE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from pachyderm_sdk import batch_all_datums

    out = Path(sys.argv[1])
    done = 0

    @batch_all_datums
    def process():
        global done
        value = Path(os.environ["nums"]).read_text().strip()
        if value == "13":
            raise ValueError("unlucky 13")
        if value == os.environ.get("EXIT_AT"):
            os._exit(7)
        if value == os.environ.get("SLEEP_AT") and not os.path.exists(os.environ["SLEPT"]):
            Path(os.environ["SLEPT"]).touch()
            time.sleep(60)
        (out / f"{value}.txt").write_text(f"{os.getpid()} {os.environ['PACH_DATUM_ID']}")
        done += 1
        print(f"processed {value}")

    if __name__ == "__main__":
        print(f"warming up once on port {os.environ['PPS_WORKER_GRPC_PORT']}", flush=True)
        process()
    """
)


class Harness:
    """Plays the core engineer's part: swaps a datum's input in, collects /pfs/out after it."""

    def __init__(self, tmp_path: Path) -> None:
        self.sandbox = tmp_path / "sandbox"
        (self.sandbox / "pfs" / "out").mkdir(parents=True)
        self.script = tmp_path / "user.py"
        self.script.write_text(USER_CODE)
        self.outputs: dict[int, dict[str, str]] = {}
        self.errors: dict[int, str | None] = {}
        self.logs: list[tuple[int | None, str]] = []

    def prepare(self, d: int) -> dict[str, str]:
        inp = self.sandbox / "pfs" / "nums"
        shutil.rmtree(inp, ignore_errors=True)
        inp.mkdir()
        (inp / str(d)).write_text(str(d))
        return {"nums": f"/pfs/nums/{d}", "PACH_DATUM_ID": f"datum-{d}"}

    def finish(self, d: int, error: str | None) -> None:
        out = self.sandbox / "pfs" / "out"
        self.outputs[d] = {f.name: f.read_text() for f in out.iterdir()}
        self.errors[d] = error
        for f in out.iterdir():
            f.unlink()

    def run(self, datums: list[int], env: dict[str, str] | None = None, **kw):
        t = pps.Transform(cmd=["python3", str(self.script), "/pfs/out"], datum_batching=True)
        return run_batched(
            t,
            {"PACH_JOB_ID": "job1", **(env or {})},
            self.sandbox,
            datums,
            self.prepare,
            self.finish,
            lambda line, d: self.logs.append((d, line)),
            **kw,
        )


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_fifty_datums_in_one_process_with_per_datum_errors(h: Harness):
    datums = list(range(50))
    r = h.run(datums)
    assert r.error == "" and len(r.pids) == 1
    by_datum = {o.datum: o for o in r.outcomes}
    assert by_datum[13].state == DatumState.FAILED and "unlucky 13" in by_datum[13].error
    assert h.errors[13] and "unlucky 13" in h.errors[13] and h.outputs[13] == {}
    ok = [d for d in datums if d != 13]
    assert all(by_datum[d].state == DatumState.SUCCESS for d in ok)
    pids = {h.outputs[d][f"{d}.txt"].split()[0] for d in ok}
    assert pids == {str(r.pids[0])}  # every datum written by the same process
    assert all(h.outputs[d][f"{d}.txt"].split()[1] == f"datum-{d}" for d in ok)  # per-datum env via .env
    assert sum(line.startswith("warming up once") for _, line in h.logs) == 1
    assert (7, "processed 7") in h.logs  # log lines carry the datum in progress
    assert not r.ok


def test_premature_exit_fails_the_datum_and_leaves_the_rest(h: Harness):
    r = h.run(list(range(6)), env={"EXIT_AT": "3"})
    states = [o.state for o in r.outcomes]
    assert states[:3] == [DatumState.SUCCESS] * 3
    assert states[3] == DatumState.FAILED and PREMATURE_EXIT in r.outcomes[3].error
    assert states[4:] == [DatumState.NOT_RUN] * 2
    assert PREMATURE_EXIT in r.error and "exit code 7" in r.error
    assert PREMATURE_EXIT in h.errors[3]


def test_pachd_lites_own_lines_go_to_the_worker_log_not_the_users(h: Harness, tmp_path: Path):
    worker: list[tuple[int | None, str]] = []
    h.run(list(range(6)), env={"EXIT_AT": "3"}, on_worker_log=lambda line, d: worker.append((d, line)))
    assert [(d, line.startswith(PREMATURE_EXIT)) for d, line in worker] == [(3, True)]
    assert not any(PREMATURE_EXIT in line for _, line in h.logs)
    h.logs.clear()
    worker.clear()
    h.run([1, 2], env={"SLEEP_AT": "2", "SLEPT": str(tmp_path / "slept")}, datum_timeout=2,
          on_worker_log=lambda line, d: worker.append((d, line)))  # fmt: skip
    assert worker == [(2, "datum timed out after 2s")]
    assert not any("timed out" in line for _, line in h.logs)


def test_user_code_that_never_asks_for_a_datum(h: Harness, tmp_path: Path):
    t = pps.Transform(cmd=["python3", "-c", "print('forgot to batch')"], datum_batching=True)
    r = run_batched(t, {}, h.sandbox, [1, 2], h.prepare, h.finish)
    assert PREMATURE_EXIT in r.error
    assert [o.state for o in r.outcomes] == [DatumState.NOT_RUN] * 2
    assert r.log_tail[0] == "forgot to batch"


def test_datum_timeout_restarts_user_code_for_the_rest(h: Harness, tmp_path: Path):
    r = h.run([1, 2, 3], env={"SLEEP_AT": "2", "SLEPT": str(tmp_path / "slept")}, datum_timeout=2)
    assert [o.state for o in r.outcomes] == [DatumState.SUCCESS, DatumState.FAILED, DatumState.SUCCESS]
    assert "timed out" in r.outcomes[1].error
    assert r.error == "" and len(r.pids) == 2
    assert r.outcomes[2].pid == r.pids[1]


def test_cancel_kills_the_batch(h: Harness, tmp_path: Path):
    cancel = threading.Event()
    slept = tmp_path / "slept"

    def cancel_once_datum_1_runs() -> None:  # not on a timer: a loaded machine starts slowly
        deadline = time.monotonic() + 30
        while not slept.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        cancel.set()

    threading.Thread(target=cancel_once_datum_1_runs, daemon=True).start()
    r = h.run([1, 2, 3], env={"SLEEP_AT": "1", "SLEPT": str(slept)}, cancel=cancel)
    assert "cancelled" in r.error
    assert r.outcomes[0].state == DatumState.FAILED
    assert [o.state for o in r.outcomes[1:]] == [DatumState.NOT_RUN] * 2


def test_status_and_cancel_rpcs_answer_the_sdk_stub(h: Harness):
    """Status/Cancel through the SDK's generated stub while the batch runs."""
    seen: dict[str, object] = {}

    def probe(line: str, d: int | None) -> None:
        h.logs.append((d, line))
        if line.startswith("warming up once on port "):
            seen["port"] = int(line.rsplit(" ", 1)[1])
        if line == "processed 1":
            channel = grpc.insecure_channel(f"localhost:{seen['port']}")
            with pytest.raises(grpc.RpcError) as err:  # not the user code, no token: refused
                WorkerStub(channel).status()
            seen["anonymous"] = err.value.code()
            admin = grpc.intercept_channel(channel, _WithToken("admin-secret"))
            seen["status"] = WorkerStub(admin).status()
            seen["cancel_other"] = WorkerStub(admin).cancel(job_id="other-job").success

    t = pps.Transform(cmd=["python3", str(h.script), "/pfs/out"], datum_batching=True)
    env = {"PACH_JOB_ID": "job1", "PACH_TOKEN": "admin-secret"}
    r = run_batched(t, env, h.sandbox, [1, 2], h.prepare, h.finish, probe, admin_token="admin-secret")
    assert r.ok, r
    assert seen["anonymous"] == grpc.StatusCode.UNAUTHENTICATED
    assert seen["status"].job_id == "job1"
    assert seen["cancel_other"] is False
    assert "admin-secret" not in (h.sandbox / "pfs" / ".env").read_text()


def _when(path: Path, action) -> threading.Thread:
    """Run ``action()`` once ``path`` exists (not on a timer: a loaded machine starts slowly)."""

    def wait() -> None:
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        action()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def _assert_restarted_first_then_rest_in_a_new_process(r) -> None:
    assert r.error == "" and len(r.pids) == 2, r
    assert r.outcomes[0].state == DatumState.FAILED and r.outcomes[0].error == CANCELED
    assert [o.state for o in r.outcomes[1:]] == [DatumState.SUCCESS] * 2
    assert {o.pid for o in r.outcomes[1:]} == {r.pids[1]}


def test_a_restarted_datum_fails_and_new_user_code_goes_on(h: Harness, tmp_path: Path):
    """The signal of the datum's `attempt` is set (RestartDatum, pachd's Status.Cancel): the user
    process is killed at once, the datum fails with "context canceled", the rest run in a new one."""
    slept = tmp_path / "slept"
    signals: dict[int, TryCancel] = {}
    open_tries: set[int] = set()

    @contextmanager
    def attempt(d: int):
        signals[d] = TryCancel(threading.Event(), ((f"/nums/{d}", "ab"),))
        open_tries.add(d)
        try:
            yield signals[d]
        finally:
            open_tries.discard(d)

    _when(slept, lambda: signals[1].restarted.set())
    started = time.monotonic()
    r = h.run([1, 2, 3], env={"SLEEP_AT": "1", "SLEPT": str(slept)}, attempt=attempt)
    assert time.monotonic() - started < 30  # interrupted (datum 1 sleeps 60s)
    _assert_restarted_first_then_rest_in_a_new_process(r)
    assert sorted(signals) == [1, 2, 3] and not open_tries  # one try each, every one ended


def test_cancel_rpc_restarts_only_the_matching_datum_in_progress(h: Harness, tmp_path: Path):
    """pachd's Status.Cancel (transform/status.go): success only for the running job and a datum
    matching data_filters; it restarts that datum, not the batch."""
    slept = tmp_path / "slept"
    port: list[int] = []
    answers: dict[str, bool] = {}

    def on_log(line: str, d: int | None) -> None:
        if line.startswith("warming up once on port "):
            port.append(int(line.rsplit(" ", 1)[1]))

    def cancel() -> None:
        channel = grpc.intercept_channel(grpc.insecure_channel(f"localhost:{port[0]}"), _WithToken("tok"))
        stub = WorkerStub(channel)
        answers["other job"] = stub.cancel(job_id="other", data_filters=[]).success
        answers["other datum"] = stub.cancel(job_id="job1", data_filters=["/nums/2"]).success
        answers["this datum"] = stub.cancel(job_id="job1", data_filters=["/nums/1"]).success

    @contextmanager
    def attempt(d: int):
        yield TryCancel(threading.Event(), ((f"/nums/{d}", "ab"),))

    _when(slept, cancel)
    t = pps.Transform(cmd=["python3", str(h.script), "/pfs/out"], datum_batching=True)
    env = {"PACH_JOB_ID": "job1", "SLEEP_AT": "1", "SLEPT": str(slept)}
    r = run_batched(
        t, env, h.sandbox, [1, 2, 3], h.prepare, h.finish, on_log, admin_token="tok", attempt=attempt
    )
    assert answers == {"other job": False, "other datum": False, "this datum": True}
    _assert_restarted_first_then_rest_in_a_new_process(r)


class _WithToken(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self.token = token

    def intercept_unary_unary(self, continuation, details, request):
        details = details._replace(metadata=[*(details.metadata or []), ("authn-token", self.token)])
        return continuation(details, request)
