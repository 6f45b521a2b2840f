"""A zero-copy parser for the hot ModifyFile message: ``{add_file: {path, datum, raw}}``.

betterproto copies the 19 MiB ``raw`` payload of every upload chunk while parsing; this
reads the protobuf wire format directly and hands back a memoryview into the received
bytes. Any other shape of message falls back to betterproto.
"""

from __future__ import annotations

from dataclasses import dataclass

from pachyderm_sdk.api import pfs

ADD_FILE_TAG = (2 << 3) | 2


@dataclass
class RawAddFile:
    path: str
    datum: str
    raw: memoryview


class _Fallback(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Fallback
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def parse_modify_file(data: bytes) -> pfs.ModifyFileRequest | RawAddFile:
    try:
        return _parse(memoryview(data))
    except _Fallback:
        return pfs.ModifyFileRequest.FromString(data)


def _parse(buf: memoryview) -> RawAddFile:
    tag, pos = _varint(buf, 0)
    if tag != ADD_FILE_TAG:
        raise _Fallback
    length, pos = _varint(buf, pos)
    end = pos + length
    if end != len(buf):
        raise _Fallback
    path = datum = ""
    raw: memoryview | None = None
    while pos < end:
        tag, pos = _varint(buf, pos)
        if tag & 7 != 2:
            raise _Fallback
        ln, pos = _varint(buf, pos)
        value = buf[pos : pos + ln]
        pos += ln
        field = tag >> 3
        if field == 1:
            path = bytes(value).decode()
        elif field == 2:
            datum = bytes(value).decode()
        elif field == 3:
            raw = _bytes_value(value)
        else:
            raise _Fallback
    if raw is None:
        raise _Fallback
    return RawAddFile(path, datum, raw)


def _bytes_value(buf: memoryview) -> memoryview:
    pos = 0
    out = buf[0:0]
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        if tag != (1 << 3) | 2:
            raise _Fallback
        ln, pos = _varint(buf, pos)
        out = buf[pos : pos + ln]
        pos += ln
    return out
