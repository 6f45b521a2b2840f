"""A minimal client for the worker's NextDatum call (datum batching).

pachyderm_sdk's ``Client().worker.next_datum`` does the same, but importing the SDK costs about
0.2 s per process (it loads every API module), and an incremental run starts a fresh worker
process per job for a handful of small datums. This client needs only grpcio and speaks the
same wire format as the SDK, on the same channel the SDK opens: plain text to
``localhost:$PPS_WORKER_GRPC_PORT``, no auth metadata (the worker service is local to the pod).

Messages (pachyderm/src/worker/worker.proto):
    NextDatumRequest  { string error = 1; }
    NextDatumResponse { repeated string env = 1; }
"""

from __future__ import annotations

import os

import grpc

NEXT_DATUM_METHOD = "/pachyderm.worker.Worker/NextDatum"
WORKER_PORT_ENV = "PPS_WORKER_GRPC_PORT"

_LENGTH_DELIMITED = 2
_ERROR_FIELD = _ENV_FIELD = 1


class WorkerProtocolError(ValueError):
    """A NextDatumResponse that cannot be decoded."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise WorkerProtocolError("NextDatumResponse: truncated varint")


def encode_request(error: str) -> bytes:
    """NextDatumRequest{error} in protobuf wire format (an empty error is an empty message)."""
    if not error:
        return b""
    raw = error.encode("utf-8")
    return _varint(_ERROR_FIELD << 3 | _LENGTH_DELIMITED) + _varint(len(raw)) + raw


def decode_response(data: bytes) -> list[str]:
    """The ``env`` list of a NextDatumResponse; fields added by newer pachd versions are skipped."""
    env: list[str] = []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, pos = _read_varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == _LENGTH_DELIMITED:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise WorkerProtocolError(f"NextDatumResponse: field {field} runs past the end")
            if field == _ENV_FIELD:
                env.append(data[pos : pos + size].decode("utf-8"))
            pos += size
        else:
            raise WorkerProtocolError(
                f"NextDatumResponse: field {field} has unsupported wire type {wire_type}"
            )
    if pos > len(data):
        raise WorkerProtocolError("NextDatumResponse: truncated fixed-size field")
    return env


class WorkerClient:
    """NextDatum against the worker of the pipeline this process runs in."""

    def __init__(self, port: str | int | None = None) -> None:
        port = port if port is not None else os.environ.get(WORKER_PORT_ENV)
        if not port:
            raise ConnectionError(f"{WORKER_PORT_ENV} is not set: datum batching needs a pipeline worker")
        channel = grpc.insecure_channel(f"localhost:{port}")
        self._next_datum = channel.unary_unary(
            NEXT_DATUM_METHOD, request_serializer=encode_request, response_deserializer=decode_response
        )

    def next_datum(self, error: str = "") -> list[str]:
        """Report the previous datum (``error`` empty: it succeeded) and wait for the next one.

        Returns the env of the next datum. When no datum is left the worker does not answer; it
        ends this process, as pachd does.
        """
        return self._next_datum(error)
