"""ETL in datum-batching mode against a stand-in for the Pachyderm worker's NextDatum API.

A real worker (or pachd-lite) is not needed to check the loop: this tiny gRPC server speaks
``pachyderm.worker.Worker/NextDatum`` with the SDK's own message classes and hands out the
datums a worker would, the way pachd does (env list and a ``.env`` file).
"""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc
import pyarrow.parquet as pq
import pytest
from pachyderm_sdk.api.worker import NextDatumRequest, NextDatumResponse

from spark_jobs.etl import run_batched
from spark_jobs.worker_env import resolve_datum_path

pytestmark = pytest.mark.spark


class FakeWorker:
    def __init__(self, steps: list[tuple[list[str], str | None]], dotenv: Path) -> None:
        self.steps, self.dotenv, self.errors = list(steps), dotenv, []

    def next_datum(self, request: NextDatumRequest, context: grpc.ServicerContext) -> NextDatumResponse:
        self.errors.append(request.error)
        if not self.steps:  # a real worker kills the user code here; end the stream instead
            context.abort(grpc.StatusCode.CANCELLED, "no more datums")
        env, dotenv_text = self.steps.pop(0)
        if dotenv_text is not None:
            self.dotenv.write_text(dotenv_text)
        return NextDatumResponse(env=env)


@pytest.fixture
def worker(split_dir: Path, monkeypatch: pytest.MonkeyPatch):
    pfs = split_dir.parent
    fake = FakeWorker(
        [
            (["split_data=/pfs/split_data/bucket-00/paysim-day-01.parquet", "PACH_DATUM_ID=d1"], None),
            ([], "split_data=/pfs/split_data/bucket-03/nope.parquet\nPACH_DATUM_ID=d2\n"),
            (["split_data=/pfs/split_data/bucket-02/paysim-day-02.parquet", "PACH_DATUM_ID=d3"], None),
        ],
        pfs / ".env",
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(
        fake.next_datum, request_deserializer=NextDatumRequest.FromString, response_serializer=bytes
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("pachyderm.worker.Worker", {"NextDatum": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("PPS_WORKER_GRPC_PORT", str(port))
    monkeypatch.setenv("split_data", "")  # restored after the test: the loop sets it per datum
    monkeypatch.setenv("PACH_DATUM_ID", "")
    yield fake
    server.stop(grace=None)
    (pfs / ".env").unlink(missing_ok=True)


def test_serves_datums_and_reports_the_failed_one(
    spark, worker: FakeWorker, split_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(grpc.RpcError):  # the worker ends the loop when datums run out
        run_batched(spark, "split_data", split_dir, out)
    assert worker.errors[:2] == ["", ""]
    assert "bucket-03/nope.parquet" in worker.errors[2] and "DatumError" in worker.errors[2]
    assert worker.errors[3] == ""
    produced = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    assert produced == ["bucket-00/paysim-day-01.parquet", "bucket-02/paysim-day-02.parquet"]
    assert pq.read_metadata(out / produced[0]).num_rows > 0


def test_datum_paths_resolve_in_a_worker_and_in_a_sandbox(tmp_path: Path) -> None:
    sandbox = tmp_path / "pfs" / "split_data"
    assert resolve_datum_path("/pfs/split_data/bucket-01/a.parquet", "split_data", sandbox) == (
        sandbox / "bucket-01" / "a.parquet"
    )
    assert resolve_datum_path(str(tmp_path), "split_data", sandbox) == tmp_path  # exists: used as is
