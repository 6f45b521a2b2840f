"""Strict protojson (protobuf's JSON mapping) for betterproto messages, as Go's protojson reads it.

parse(cls, json_text, what) -> cls
    camelCase or snake_case keys, 64-bit ints as number or string, Durations as "600s",
    Timestamps as RFC 3339, bytes as base64, enums by name or number, null = unset.
    Unknown fields, duplicate keys or fields, wrong types and two members of one oneof raise
    ProtoJsonError naming the full field path (e.g. "transform.cmdd", "input.cross[1].pfs.glob");
    `what` names the document in messages ("pipeline spec").
dumps(msg) -> str     lowerCamelCase keys, 64-bit ints as strings, unset fields left out.
is_set(msg) -> bool   a message field is present (parsed or assigned) or holds a non-default value.
ProtoJsonError(errors.InvalidArgument, ValueError)   .field is the offending path ("" = the whole text).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import betterproto

from pachd_lite.errors import InvalidArgument

__all__ = ["ProtoJsonError", "dumps", "is_set", "parse"]

M = TypeVar("M", bound=betterproto.Message)


class ProtoJsonError(InvalidArgument, ValueError):
    """Text that is not valid protojson for the message (INVALID_ARGUMENT); `.field` is its path."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


_INT_TYPES = {
    betterproto.TYPE_INT32: (-(2**31), 2**31 - 1),
    betterproto.TYPE_SINT32: (-(2**31), 2**31 - 1),
    betterproto.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    betterproto.TYPE_INT64: (-(2**63), 2**63 - 1),
    betterproto.TYPE_SINT64: (-(2**63), 2**63 - 1),
    betterproto.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    betterproto.TYPE_UINT32: (0, 2**32 - 1),
    betterproto.TYPE_FIXED32: (0, 2**32 - 1),
    betterproto.TYPE_UINT64: (0, 2**64 - 1),
    betterproto.TYPE_FIXED64: (0, 2**64 - 1),
}
_INT64_TYPES = {
    betterproto.TYPE_INT64,
    betterproto.TYPE_UINT64,
    betterproto.TYPE_SINT64,
    betterproto.TYPE_FIXED64,
    betterproto.TYPE_SFIXED64,
}
_FLOAT_TYPES = {betterproto.TYPE_FLOAT, betterproto.TYPE_DOUBLE}
_DURATION_RE = re.compile(r"^(-)?(\d+)(?:\.(\d{1,9}))?s$")
# Proto fields whose proto name is not snake_case (betterproto lower-cases them): JSON name -> field.
_PROTO_NAME_ALIASES = {("Egress", "URL"): "url"}


def is_set(msg: Any) -> bool:
    """Set (parsed from the wire/JSON or assigned) or holding any non-default field. Never
    to_dict(): that materialises defaults, e.g. pfs.Repo's post-init type and project."""
    return msg is not None and (bool(betterproto.serialized_on_wire(msg)) or bool(msg))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {json.dumps(value)}"
    if isinstance(value, list):
        return "an array"
    return "an object"


# --- decoding --------------------------------------------------------------------------------------


def parse(cls: type[M], json_text: str, what: str) -> M:
    """Decode `json_text` into a new `cls`; see the module docstring."""

    def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise ProtoJsonError(f'duplicate key "{k}" in {what} JSON', k)
            out[k] = v
        return out

    try:
        data = json.loads(json_text, object_pairs_hook=no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise ProtoJsonError(f"{what} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from e
    if not isinstance(data, dict):
        raise ProtoJsonError(f"{what} must be a JSON object")
    msg = _Decoder(what).message(cls, data, "")
    assert isinstance(msg, cls)
    return msg


def _field_index(cls: type[betterproto.Message]) -> dict[str, dataclasses.Field[Any]]:
    index: dict[str, dataclasses.Field[Any]] = {}
    for f in dataclasses.fields(cls):
        if "betterproto" not in f.metadata:
            continue
        index[f.name] = f
        index[_camel(f.name)] = f
    for (cls_name, json_name), field_name in _PROTO_NAME_ALIASES.items():
        if cls.__name__ == cls_name:
            index[json_name] = index.pop(field_name)
            index.pop(_camel(field_name), None)
    return index


class _Decoder:
    def __init__(self, what: str) -> None:
        self.what = what

    def message(self, cls: type[betterproto.Message], obj: Any, path: str) -> betterproto.Message:
        if not isinstance(obj, dict):
            raise ProtoJsonError(f"{path or self.what}: expected a JSON object, got {_kind(obj)}", path)
        msg = cls()
        msg._serialized_on_wire = True  # present in the JSON, even if empty
        meta = msg._betterproto
        index = _field_index(cls)
        seen: dict[str, str] = {}
        oneof_seen: dict[str, str] = {}
        for key, value in obj.items():
            fpath = _join(path, key)
            f = index.get(key)
            if f is None:
                raise ProtoJsonError(f'unknown field "{fpath}" in {self.what}', fpath)
            if f.name in seen:
                raise ProtoJsonError(
                    f'field "{fpath}" given twice (also as "{_join(path, seen[f.name])}")', fpath
                )
            seen[f.name] = key
            if value is None:
                continue  # protojson: null means "not set"
            group = meta.oneof_group_by_field.get(f.name)
            if group is not None:
                if group in oneof_seen:
                    raise ProtoJsonError(
                        f'"{fpath}" and "{_join(path, oneof_seen[group])}" cannot both be set', fpath
                    )
                oneof_seen[group] = key
            setattr(msg, f.name, self.field(msg, f, value, fpath))
        return msg

    def field(self, msg: betterproto.Message, f: dataclasses.Field[Any], value: Any, path: str) -> Any:
        fm: betterproto.FieldMetadata = f.metadata["betterproto"]
        meta = msg._betterproto
        if fm.proto_type == betterproto.TYPE_MAP:
            if not isinstance(value, dict):
                raise ProtoJsonError(f"{path}: expected a JSON object (map), got {_kind(value)}", path)
            value_type = fm.map_types[1]
            value_cls = meta.cls_by_field.get(f.name + ".value")
            return {
                str(k): self.single(value_type, value_cls, v, f"{path}.{k}", wraps=None)
                for k, v in value.items()
            }
        if isinstance(meta.default_gen[f.name](), list):
            if not isinstance(value, list):
                raise ProtoJsonError(f"{path}: expected a JSON array, got {_kind(value)}", path)
            cls = meta.cls_by_field.get(f.name)
            return [self.single(fm.proto_type, cls, v, f"{path}[{i}]", fm.wraps) for i, v in enumerate(value)]
        return self.single(fm.proto_type, meta.cls_by_field.get(f.name), value, path, fm.wraps)

    def single(self, proto_type: str, cls: Any, value: Any, path: str, wraps: str | None) -> Any:
        if wraps:  # google.protobuf.*Value wrappers are their bare value in JSON
            return self.single(wraps, None, value, path, None)
        if proto_type == betterproto.TYPE_STRING:
            if not isinstance(value, str):
                raise ProtoJsonError(f"{path}: expected a string, got {_kind(value)}", path)
            return value
        if proto_type == betterproto.TYPE_BOOL:
            if not isinstance(value, bool):
                raise ProtoJsonError(f"{path}: expected true or false, got {_kind(value)}", path)
            return value
        if proto_type in _INT_TYPES:
            return _decode_int(proto_type, value, path)
        if proto_type in _FLOAT_TYPES:
            return _decode_float(value, path)
        if proto_type == betterproto.TYPE_BYTES:
            return _decode_bytes(value, path)
        if proto_type == betterproto.TYPE_ENUM:
            return _decode_enum(cls, value, path)
        if proto_type == betterproto.TYPE_MESSAGE:
            if cls is timedelta:
                return _decode_duration(value, path)
            if cls is datetime:
                return _decode_timestamp(value, path)
            return self.message(cls, value, path)
        raise ProtoJsonError(f"{path}: unsupported field type {proto_type}", path)


def _decode_int(proto_type: str, value: Any, path: str) -> int:
    lo, hi = _INT_TYPES[proto_type]
    if isinstance(value, bool):
        raise ProtoJsonError(f"{path}: expected an integer, got a boolean", path)
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        n = int(value)
    else:
        raise ProtoJsonError(f"{path}: expected an integer (number or string), got {_kind(value)}", path)
    if not lo <= n <= hi:
        raise ProtoJsonError(f"{path}: {n} is out of range for {proto_type}", path)
    return n


def _decode_float(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise ProtoJsonError(f"{path}: expected a number, got a boolean", path)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:
            return special[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise ProtoJsonError(f"{path}: expected a number, got {_kind(value)}", path)


def _decode_bytes(value: Any, path: str) -> bytes:
    if not isinstance(value, str):
        raise ProtoJsonError(f"{path}: expected base64 text, got {_kind(value)}", path)
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.urlsafe_b64decode(padded) if "-" in value or "_" in value else base64.b64decode(padded)
    except ValueError as e:
        raise ProtoJsonError(f"{path}: invalid base64: {e}", path) from e


def _decode_enum(cls: Any, value: Any, path: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return cls(value)
        except ValueError:
            pass
    elif isinstance(value, str):
        try:
            return cls[value]
        except KeyError:
            pass
    names = ", ".join(m.name for m in cls)
    raise ProtoJsonError(f"{path}: invalid value {value!r}; expected one of {names}", path)


def _decode_duration(value: Any, path: str) -> timedelta:
    m = _DURATION_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise ProtoJsonError(f'{path}: expected a duration like "600s", got {json.dumps(value)}', path)
    sign, secs, frac = m.groups()
    td = timedelta(seconds=int(secs), microseconds=int((frac or "0").ljust(9, "0")[:6]))
    return -td if sign else td


def _decode_timestamp(value: Any, path: str) -> datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise ProtoJsonError(
        f'{path}: expected an RFC 3339 timestamp like "2024-01-01T00:00:00Z", got {value!r}', path
    )


# --- encoding --------------------------------------------------------------------------------------


def dumps(msg: betterproto.Message) -> str:
    """protojson (lowerCamelCase, 64-bit ints as strings, durations as "600s") of `msg`, indented."""
    return json.dumps(_encode_message(msg), indent=2)


def _encode_message(msg: betterproto.Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    meta = msg._betterproto
    for f in dataclasses.fields(msg):
        fm = f.metadata.get("betterproto")
        if fm is None:
            continue
        value = getattr(msg, f.name)
        key = _camel(f.name)
        if fm.proto_type == betterproto.TYPE_ENUM:  # parsed enums may come back as plain ints
            enum_cls = meta.cls_by_field[f.name]
            value = [enum_cls(v) for v in value] if isinstance(value, list) else enum_cls(value)
        if fm.proto_type == betterproto.TYPE_MAP:
            if value:
                out[key] = {k: _encode_single(fm.map_types[1], v, None) for k, v in value.items()}
        elif isinstance(meta.default_gen[f.name](), list):
            if value:
                out[key] = [_encode_single(fm.proto_type, v, fm.wraps) for v in value]
        elif fm.proto_type == betterproto.TYPE_MESSAGE and fm.wraps is None:
            if isinstance(value, timedelta):
                present = value != timedelta(0)
            elif isinstance(value, datetime):
                present = value != datetime(1970, 1, 1, tzinfo=UTC)
            else:
                present = is_set(value)
            if present:
                out[key] = _encode_single(fm.proto_type, value, None)
        elif fm.wraps is not None:
            if value is not None:
                out[key] = _encode_single(fm.wraps, value, None)
        elif value != meta.default_gen[f.name]():
            out[key] = _encode_single(fm.proto_type, value, None)
    return out


def _encode_single(proto_type: str, value: Any, wraps: str | None) -> Any:
    if wraps:
        return _encode_single(wraps, value, None)
    if proto_type in _INT64_TYPES:
        return str(value)
    if proto_type == betterproto.TYPE_ENUM:
        return value.name
    if proto_type == betterproto.TYPE_BYTES:
        return base64.b64encode(value).decode()
    if proto_type in _FLOAT_TYPES:
        if not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return int(value) if value.is_integer() else value
    if isinstance(value, timedelta):
        return _encode_duration(value)
    if isinstance(value, datetime):
        ts = value if value.tzinfo else value.replace(tzinfo=UTC)
        return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, betterproto.Message):
        return _encode_message(value)
    return value


def _encode_duration(td: timedelta) -> str:
    total_us = (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds
    sign = "-" if total_us < 0 else ""
    secs, us = divmod(abs(total_us), 1_000_000)
    if us == 0:
        return f"{sign}{secs}s"
    frac = f"{us:06d}"
    if frac.endswith("000"):
        frac = frac[:3]
    return f"{sign}{secs}.{frac}s"
