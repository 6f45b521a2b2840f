"""pachd's datum filter (common.MatchDatum): which datums a list of `data_filters` names.

A datum's files are ``(path, hash hex)`` pairs, one per input (pps.InputFile). Every filter must
equal the path, the hex hash or the base64 hash of one of the datum's files; no filter matches
every datum. GetLogs and RestartDatum filter with it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence

from pachd_lite.pps.datums import Datum

DatumFiles = tuple[tuple[str, str], ...]  # (path, hash hex) per input


def files_of(datum: Datum) -> DatumFiles:
    return tuple((i.path, i.file_hash) for i in datum.inputs)


def _b64(hex_hash: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(hex_hash)).decode()
    except (ValueError, binascii.Error):
        return ""


def match_datum(filters: Sequence[str], files: Iterable[tuple[str, str]]) -> bool:
    if not filters:
        return True
    keys: set[str] = set()
    for path, hex_hash in files:
        keys.update((path, hex_hash, _b64(hex_hash)))
    keys.discard("")
    return all(f in keys for f in filters)
