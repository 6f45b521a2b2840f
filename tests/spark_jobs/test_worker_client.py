"""spark_jobs.worker_client: NextDatum without the SDK, byte-compatible with the SDK's messages.

The SDK's betterproto classes are the reference for the wire format; the loop itself runs
against a gRPC worker stand-in in test_etl_datum_batching and against pachd-lite's worker in the
pipeline tests.
"""

from __future__ import annotations

import pytest
from pachyderm_sdk.api.worker import NextDatumRequest, NextDatumResponse

from spark_jobs.worker_client import WorkerClient, WorkerProtocolError, decode_response, encode_request


@pytest.mark.parametrize("error", ["", "ValueError('bad row')", "ü" * 200, "x" * 70_000])
def test_request_bytes_equal_the_sdk_message(error: str) -> None:
    assert encode_request(error) == bytes(NextDatumRequest(error=error))
    assert NextDatumRequest().parse(encode_request(error)).error == error


@pytest.mark.parametrize(
    "env",
    [[], ["split_data=/pfs/split_data/bucket-00/a.parquet", "PACH_DATUM_ID=d1"], ["K=" + "v" * 300, "É=é"]],
)
def test_response_decodes_what_the_sdk_encodes(env: list[str]) -> None:
    assert decode_response(bytes(NextDatumResponse(env=env))) == env


def test_fields_of_newer_versions_are_skipped() -> None:
    known = bytes(NextDatumResponse(env=["A=1", "B=2"]))
    varint_field = bytes([2 << 3 | 0]) + bytes([0xAC, 0x02])  # field 2 = 300
    fixed64_field = bytes([3 << 3 | 1]) + bytes(8)
    fixed32_field = bytes([4 << 3 | 5]) + bytes(4)
    bytes_field = bytes([5 << 3 | 2, 3]) + b"xyz"
    data = varint_field + known[:5] + fixed64_field + bytes_field + known[5:] + fixed32_field
    assert decode_response(data) == ["A=1", "B=2"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes([1 << 3 | 2, 10]) + b"short", "runs past the end"),
        (bytes([2 << 3 | 0, 0x80]), "truncated varint"),
        (bytes([3 << 3 | 1, 0, 0]), "truncated fixed-size field"),
        (bytes([6 << 3 | 3]), "unsupported wire type 3"),
    ],
)
def test_broken_responses_fail_clearly(data: bytes, message: str) -> None:
    with pytest.raises(WorkerProtocolError, match=message):
        decode_response(data)


def test_outside_a_worker_it_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PPS_WORKER_GRPC_PORT", raising=False)
    with pytest.raises(ConnectionError, match="PPS_WORKER_GRPC_PORT is not set"):
        WorkerClient()
