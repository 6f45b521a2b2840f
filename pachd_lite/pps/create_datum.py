"""CreateDatum's protocol (pachd 2.12's apiServer.CreateDatum), apart from how datums are made.

The first request must be `start` with an input; pachd then sends `start.number` datums (0 or
less: DEFAULT_BATCH) and waits for a `continue_` request asking for the next `number`. The
stream ends when every datum was sent or the client closes its side. Errors are pachd's plain
errors (gRPC UNKNOWN) with its messages.

Public API:
    stream_datums(requests, generate) -> Iterator[T]
        `requests`: the client's CreateDatumRequest stream; `generate(input)`: the datums of a
        (checked) input, lazily, e.g. as DatumInfo messages in pachd's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import betterproto
from pachyderm_sdk.api import pps

from pachd_lite.errors import Unknown
from pachd_lite.pps.spec import input_kinds

DEFAULT_BATCH = 100  # pachd's DefaultDatumBatchSize

T = TypeVar("T")


def stream_datums(
    requests: Iterable[pps.CreateDatumRequest], generate: Callable[[pps.Input], Iterable[T]]
) -> Iterator[T]:
    it = iter(requests)
    first = next(it, None)
    if first is None:
        raise Unknown("server receive: EOF")
    field, start = betterproto.which_one_of(first, "body")
    if field != "start":
        raise Unknown("first message must be a StartCreateDatumRequest message")
    if start.input is None or not betterproto.serialized_on_wire(start.input):
        raise Unknown("first message must specify an input")
    check_input(start.input)
    datums = iter(generate(start.input))
    number = start.number
    while True:
        if number <= 0:
            number = DEFAULT_BATCH
        for _ in range(number):
            datum = next(datums, None)
            if datum is None:
                return
            yield datum
        msg = next(it, None)
        if msg is None:  # the client closed its side (io.EOF): done
            return
        field, body = betterproto.which_one_of(msg, "body")
        if field != "continue_":
            raise Unknown("subsequent messages must be a ContinueCreateDatumRequest message")
        number = body.number


def check_input(inp: pps.Input) -> None:
    """pachd's refusals before making datums: cron inputs, inputs with no type set."""
    kinds = input_kinds(inp)
    if not kinds:
        raise Unknown(f"streaming iterate: unrecognized input type: {inp.to_json()}")
    if kinds[0] == "cron":
        raise Unknown(
            "getting streaming iterator: can't create datums with a cron input, "
            "there will be no datums until the pipeline is created"
        )
    if kinds[0] != "pfs":
        for child in getattr(inp, kinds[0]):
            check_input(child)
