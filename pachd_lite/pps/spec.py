"""Pipeline specs: strict protojson parsing, pachd's validation rules, defaults, effective spec.

Public API (stable; the PPS core calls it):

    parse_create_pipeline_request(json_text: str) -> pps.CreatePipelineRequest
        Strict protojson: camelCase or snake_case keys, 64-bit ints as number or string,
        Durations as "600s", null = unset. Unknown fields, duplicate fields, wrong types and two
        members of one oneof raise SpecError naming the full field path (e.g. "transform.cmdd",
        "input.cross[1].pfs.glob").
    validate_request(req: pps.CreatePipelineRequest) -> None
        pachd 2.12's rules (names, transform, inputs, reprocess_spec) plus the features
        pachd-lite cannot run (secrets mounted as files, s3_out, service, spout, egress, tf_job,
        s3 inputs); `transform.secrets` need name, env_var and key; a cron input needs a name and
        a spec pachd parses (pachd_lite.cronspec). Raises SpecError.
    secret_refs(req) -> list[(field path, secret name, key)]   for the create-time existence check.
    apply_defaults(req) -> pps.CreatePipelineRequest   (a new message; `req` is not changed)
        Project "default", image "ubuntu:20.04", datum_tries 3, parallelism constant 1,
        output_branch "master", reprocess_spec "until_success"; each PFS input: name = repo,
        branch "master", project = the pipeline's project, repo_type "user"; each cron input:
        repo `<pipeline>_<name>`, project = the pipeline's project, start = now. The salt is left
        alone (the core generates one when empty or on reprocess, as pachd does).
    effective_spec_json(req) -> str      protojson (lowerCamelCase) of apply_defaults(req).
    request_to_json(req) -> str          protojson of `req` as is (e.g. for user_spec_json).
    SpecError(errors.InvalidArgument, ValueError)  .field is the offending field path ("" = whole spec).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import betterproto
from pachyderm_sdk.api import pfs, pps

from pachd_lite import cronspec
from pachd_lite.errors import InvalidArgument
from pachd_lite.pps.datums import apply_cron_input_defaults, apply_pfs_input_defaults

__all__ = [
    "SpecError",
    "apply_defaults",
    "cron_inputs",
    "effective_spec_json",
    "parse_create_pipeline_request",
    "request_to_json",
    "secret_refs",
    "validate_request",
]

DEFAULT_IMAGE = "ubuntu:20.04"
DEFAULT_DATUM_TRIES = 3
MAX_PIPELINE_NAME_LENGTH = 51
MAX_PROJECT_NAME_LENGTH = 51  # projectNameLimit = 63 - 8 - len("-v99")
MAX_RC_NAME_LENGTH = 63  # "<project>-<pipeline>-v99" must be a valid k8s name
REPROCESS_SPECS = ("until_success", "every_job")
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
_NOT_SUPPORTED = "pachd-lite does not support {}; use a real Pachyderm cluster"


class SpecError(InvalidArgument, ValueError):
    """An invalid pipeline spec (INVALID_ARGUMENT); `.field` is the offending field path."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


# --- strict protojson decoding ---------------------------------------------------------------------

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
_FLOAT_TYPES = {betterproto.TYPE_FLOAT, betterproto.TYPE_DOUBLE}
_DURATION_RE = re.compile(r"^(-)?(\d+)(?:\.(\d{1,9}))?s$")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SpecError(f'duplicate key "{k}" in pipeline spec JSON', k)
        out[k] = v
    return out


def parse_create_pipeline_request(json_text: str) -> pps.CreatePipelineRequest:
    """Parse a pipeline spec (protojson of CreatePipelineRequest); see module docstring."""
    try:
        data = json.loads(json_text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise SpecError(
            f"pipeline spec is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from e
    if not isinstance(data, dict):
        raise SpecError("pipeline spec must be a JSON object")
    msg = _decode_message(pps.CreatePipelineRequest, data, "")
    assert isinstance(msg, pps.CreatePipelineRequest)
    return msg


# Proto fields whose proto name is not snake_case (betterproto lower-cases them): JSON name -> field.
_PROTO_NAME_ALIASES = {("Egress", "URL"): "url"}


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


def _decode_message(cls: type[betterproto.Message], obj: Any, path: str) -> betterproto.Message:
    if not isinstance(obj, dict):
        raise SpecError(f"{path or 'pipeline spec'}: expected a JSON object, got {_kind(obj)}", path)
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
            raise SpecError(f'unknown field "{fpath}" in pipeline spec', fpath)
        if f.name in seen:
            raise SpecError(f'field "{fpath}" given twice (also as "{_join(path, seen[f.name])}")', fpath)
        seen[f.name] = key
        if value is None:
            continue  # protojson: null means "not set"
        group = meta.oneof_group_by_field.get(f.name)
        if group is not None:
            if group in oneof_seen:
                raise SpecError(f'"{fpath}" and "{_join(path, oneof_seen[group])}" cannot both be set', fpath)
            oneof_seen[group] = key
        setattr(msg, f.name, _decode_field(msg, f, value, fpath))
    return msg


def _decode_field(msg: betterproto.Message, f: dataclasses.Field[Any], value: Any, path: str) -> Any:
    fm: betterproto.FieldMetadata = f.metadata["betterproto"]
    meta = msg._betterproto
    if fm.proto_type == betterproto.TYPE_MAP:
        if not isinstance(value, dict):
            raise SpecError(f"{path}: expected a JSON object (map), got {_kind(value)}", path)
        value_type = fm.map_types[1]
        value_cls = meta.cls_by_field.get(f.name + ".value")
        return {
            str(k): _decode_single(value_type, value_cls, v, f"{path}.{k}", wraps=None)
            for k, v in value.items()
        }
    if isinstance(meta.default_gen[f.name](), list):
        if not isinstance(value, list):
            raise SpecError(f"{path}: expected a JSON array, got {_kind(value)}", path)
        cls = meta.cls_by_field.get(f.name)
        return [_decode_single(fm.proto_type, cls, v, f"{path}[{i}]", fm.wraps) for i, v in enumerate(value)]
    return _decode_single(fm.proto_type, meta.cls_by_field.get(f.name), value, path, fm.wraps)


def _decode_single(proto_type: str, cls: Any, value: Any, path: str, wraps: str | None) -> Any:
    if wraps:  # google.protobuf.*Value wrappers are their bare value in JSON
        return _decode_single(wraps, None, value, path, None)
    if proto_type == betterproto.TYPE_STRING:
        if not isinstance(value, str):
            raise SpecError(f"{path}: expected a string, got {_kind(value)}", path)
        return value
    if proto_type == betterproto.TYPE_BOOL:
        if not isinstance(value, bool):
            raise SpecError(f"{path}: expected true or false, got {_kind(value)}", path)
        return value
    if proto_type in _INT_TYPES:
        return _decode_int(proto_type, value, path)
    if proto_type in _FLOAT_TYPES:
        return _decode_float(value, path)
    if proto_type == betterproto.TYPE_BYTES:
        if not isinstance(value, str):
            raise SpecError(f"{path}: expected base64 text, got {_kind(value)}", path)
        padded = value + "=" * (-len(value) % 4)
        try:
            return (
                base64.urlsafe_b64decode(padded) if "-" in value or "_" in value else base64.b64decode(padded)
            )
        except ValueError as e:
            raise SpecError(f"{path}: invalid base64: {e}", path) from e
    if proto_type == betterproto.TYPE_ENUM:
        return _decode_enum(cls, value, path)
    if proto_type == betterproto.TYPE_MESSAGE:
        if cls is timedelta:
            return _decode_duration(value, path)
        if cls is datetime:
            return _decode_timestamp(value, path)
        return _decode_message(cls, value, path)
    raise SpecError(f"{path}: unsupported field type {proto_type}", path)


def _decode_int(proto_type: str, value: Any, path: str) -> int:
    lo, hi = _INT_TYPES[proto_type]
    if isinstance(value, bool):
        raise SpecError(f"{path}: expected an integer, got a boolean", path)
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        n = int(value)
    else:
        raise SpecError(f"{path}: expected an integer (number or string), got {_kind(value)}", path)
    if not lo <= n <= hi:
        raise SpecError(f"{path}: {n} is out of range for {proto_type}", path)
    return n


def _decode_float(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise SpecError(f"{path}: expected a number, got a boolean", path)
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
    raise SpecError(f"{path}: expected a number, got {_kind(value)}", path)


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
    raise SpecError(f"{path}: invalid value {value!r}; expected one of {names}", path)


def _decode_duration(value: Any, path: str) -> timedelta:
    m = _DURATION_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise SpecError(f'{path}: expected a duration like "600s", got {json.dumps(value)}', path)
    sign, secs, frac = m.groups()
    td = timedelta(seconds=int(secs), microseconds=int((frac or "0").ljust(9, "0")[:6]))
    return -td if sign else td


def _decode_timestamp(value: Any, path: str) -> datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise SpecError(
        f'{path}: expected an RFC 3339 timestamp like "2024-01-01T00:00:00Z", got {value!r}', path
    )


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


# --- protojson encoding ----------------------------------------------------------------------------


def _present(msg: Any) -> bool:
    """Set (parsed from the wire/JSON or assigned) or holding any non-default field. Never
    to_dict(): that materialises defaults, e.g. pfs.Repo's post-init type and project."""
    return msg is not None and (bool(betterproto.serialized_on_wire(msg)) or bool(msg))


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
                present = _present(value)
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
    if proto_type in (
        betterproto.TYPE_INT64,
        betterproto.TYPE_UINT64,
        betterproto.TYPE_SINT64,
        betterproto.TYPE_FIXED64,
        betterproto.TYPE_SFIXED64,
    ):
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


def request_to_json(req: pps.CreatePipelineRequest) -> str:
    """protojson (lowerCamelCase, 64-bit ints as strings, durations as "600s") of `req`."""
    return json.dumps(_encode_message(req), indent=2)


# --- validation ------------------------------------------------------------------------------------


def _check_name(kind: str, name: str, path: str, max_len: int | None = None) -> None:
    if not name:
        raise SpecError(f"{path}: {kind} name cannot be empty", path)
    if not _NAME_RE.match(name):
        raise SpecError(
            f'{path}: {kind} name "{name}" is invalid: only letters, digits, "_" and "-" are allowed', path
        )
    if max_len is not None and len(name) > max_len:
        raise SpecError(
            f'{path}: {kind} name "{name}" is {len(name) - max_len} characters longer than the {max_len} max',
            path,
        )


def validate_request(req: pps.CreatePipelineRequest) -> None:
    """Apply pachd's spec rules and pachd-lite's limits; raise SpecError on the first violation."""
    if not _present(req.pipeline) or not req.pipeline.name:
        raise SpecError("invalid pipeline spec: pipeline.name is required", "pipeline.name")
    project = req.pipeline.project.name if _present(req.pipeline.project) else ""
    project = project or "default"
    if project != "default":
        _check_name("project", project, "pipeline.project.name", MAX_PROJECT_NAME_LENGTH)
        if not project[0].isalnum():
            raise SpecError(
                f'pipeline.project.name: project name "{project}" must start with a letter or digit',
                "pipeline.project.name",
            )
    name = req.pipeline.name
    _check_name("pipeline", name, "pipeline.name", MAX_PIPELINE_NAME_LENGTH)
    if not name[0].isalnum():
        raise SpecError(
            f'pipeline.name: pipeline name "{name}" must start with a letter or digit', "pipeline.name"
        )
    if len(project) + len(name) + len("--v99") > MAX_RC_NAME_LENGTH:
        raise SpecError(
            f'pipeline.name: project "{project}" plus pipeline "{name}" is too long: together they may have at most '
            f"{MAX_RC_NAME_LENGTH - len('--v99')} characters",
            "pipeline.name",
        )

    _check_unsupported(req)

    if not _present(req.transform):
        raise SpecError("invalid pipeline spec: transform is required", "transform")
    if not req.transform.cmd:
        raise SpecError(
            "transform.cmd is required: pachd-lite runs the command on the host and cannot use an image's entrypoint",
            "transform.cmd",
        )
    if req.reprocess_spec and req.reprocess_spec not in REPROCESS_SPECS:
        raise SpecError(
            f'reprocess_spec: "{req.reprocess_spec}" is invalid; it must be "until_success" or "every_job"',
            "reprocess_spec",
        )
    if req.output_branch:
        _check_name("branch", req.output_branch, "output_branch")
    if req.datum_tries < 0:
        raise SpecError("datum_tries cannot be negative", "datum_tries")
    if req.pod_patch:
        try:
            json.loads(req.pod_patch)
        except json.JSONDecodeError as e:
            raise SpecError(f"pod_patch is not valid JSON: {e.msg}", "pod_patch") from e
    for fname in ("datum_timeout", "job_timeout"):
        value = getattr(req, fname)
        if isinstance(value, timedelta) and value < timedelta(0):
            raise SpecError(f"{fname} cannot be negative", fname)

    if not _present(req.input):
        raise SpecError("invalid pipeline spec: input is required", "input")
    _validate_input(req.input, "input")
    _validate_names(req.input, set(), "input")
    for path, pfs_input in _pfs_inputs(req.input, "input"):
        if pfs_input.repo == name and (pfs_input.project or project) == project:
            raise SpecError(f"{path}.repo: pipeline {name} cannot read its own output repo", f"{path}.repo")


def _check_unsupported(req: pps.CreatePipelineRequest) -> None:
    if _present(req.tf_job):
        raise SpecError("tf_job is not supported yet", "tf_job")
    if _present(req.transform):
        _validate_secrets(req.transform.secrets)
    if req.s3_out:
        raise SpecError(_NOT_SUPPORTED.format("s3_out (the S3 gateway)"), "s3_out")
    if _present(req.service):
        raise SpecError(_NOT_SUPPORTED.format("service pipelines"), "service")
    if _present(req.spout):
        raise SpecError(_NOT_SUPPORTED.format("spout pipelines"), "spout")
    if _present(req.egress):
        raise SpecError(_NOT_SUPPORTED.format("egress"), "egress")


_ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _validate_secrets(mounts: list[pps.SecretMount]) -> None:
    """Secrets as environment variables only (no files on a host); names are checked at create."""
    seen: dict[str, int] = {}
    for i, m in enumerate(mounts):
        path = f"transform.secrets[{i}]"
        if not m.name:
            raise SpecError(f"{path}.name: the secret's name is required", f"{path}.name")
        if m.mount_path:
            raise SpecError(
                _NOT_SUPPORTED.format(f"secrets mounted as files ({path}.mount_path)")
                + "; use env_var and key to get the value in an environment variable",
                f"{path}.mount_path",
            )
        if not m.env_var:
            raise SpecError(
                f"{path}.env_var: set env_var (and key) to use secret {m.name}", f"{path}.env_var"
            )
        if not _ENV_VAR_RE.match(m.env_var):
            raise SpecError(
                f'{path}.env_var: "{m.env_var}" is not a valid environment variable name', f"{path}.env_var"
            )
        if not m.key:
            raise SpecError(
                f"{path}.key: the key of secret {m.name} to put in {m.env_var} is required", f"{path}.key"
            )
        if m.env_var in seen:
            raise SpecError(
                f"{path}.env_var: {m.env_var} is already set by transform.secrets[{seen[m.env_var]}]",
                f"{path}.env_var",
            )
        seen[m.env_var] = i


def secret_refs(req: pps.CreatePipelineRequest) -> list[tuple[str, str, str]]:
    """(field path, secret name, key) of every ``transform.secrets`` entry."""
    if not _present(req.transform):
        return []
    return [(f"transform.secrets[{i}]", m.name, m.key) for i, m in enumerate(req.transform.secrets)]


_INPUT_KINDS = ("pfs", "cross", "union", "join", "group", "cron")


def _input_kinds(inp: pps.Input) -> list[str]:
    kinds = []
    for kind in _INPUT_KINDS:
        value = getattr(inp, kind)
        if (isinstance(value, list) and value) or (not isinstance(value, list) and _present(value)):
            kinds.append(kind)
    return kinds


def _validate_input(inp: pps.Input, path: str) -> None:
    kinds = _input_kinds(inp)
    if not kinds:
        raise SpecError(f"{path}: no input set (set one of pfs, cross, union, join, group)", path)
    if len(kinds) > 1:
        raise SpecError(f"{path}: multiple input types set ({', '.join(kinds)}); set exactly one", path)
    kind = kinds[0]
    if kind == "cron":
        _validate_cron(inp.cron, f"{path}.cron")
        return
    if kind == "pfs":
        _validate_pfs(inp.pfs, f"{path}.pfs")
        return
    children = getattr(inp, kind)
    for i, child in enumerate(children):
        _validate_input(child, f"{path}.{kind}[{i}]")
    if kind in ("join", "group", "union"):
        for cpath, pfs_input in _pfs_inputs(inp, path):
            if pfs_input.s3:
                raise SpecError(f"{cpath}.s3: S3 inputs cannot be used in {kind} inputs", f"{cpath}.s3")


def _validate_pfs(p: pps.PfsInput, path: str) -> None:
    if not p.repo:
        raise SpecError(f"{path}.repo: input must specify a repo", f"{path}.repo")
    _check_name("repo", p.repo, f"{path}.repo")
    if p.project and p.project != "default":
        _check_name("project", p.project, f"{path}.project", MAX_PROJECT_NAME_LENGTH)
    if not p.glob:
        raise SpecError(f"{path}.glob: input must specify a glob", f"{path}.glob")
    if p.commit:
        raise SpecError(
            f"{path}.commit: an input cannot specify a commit; use a branch whose head points to the commit",
            f"{path}.commit",
        )
    if p.branch:
        _check_name("branch", p.branch, f"{path}.branch")
    if p.repo_type and p.repo_type != "user":
        raise SpecError(
            f'{path}.repo_type: only "user" repos can be pipeline inputs in pachd-lite', f"{path}.repo_type"
        )
    if p.s3:
        raise SpecError(_NOT_SUPPORTED.format(f"S3 inputs ({path}.s3)"), f"{path}.s3")
    if p.lazy and p.empty_files:
        raise SpecError(f"{path}: lazy and empty_files cannot both be set", path)


def _validate_cron(c: pps.CronInput, path: str) -> None:
    if not c.name:
        raise SpecError(f"{path}.name: a cron input must specify a name", f"{path}.name")
    if c.repo:
        _check_name("repo", c.repo, f"{path}.repo")
    try:
        cronspec.parse(c.spec)
    except cronspec.CronError as e:  # pachd: "error parsing cron-spec: <robfig/cron's error>"
        raise SpecError(f"{path}.spec: error parsing cron-spec: {e}", f"{path}.spec") from e


def _validate_names(inp: pps.Input, names: set[str], path: str) -> None:
    """pachd's validateNames: names unique, except between the branches of a union."""
    if _present(inp.pfs) or _present(inp.cron):
        kind = "pfs" if _present(inp.pfs) else "cron"
        name = (inp.pfs.name or inp.pfs.repo) if kind == "pfs" else inp.cron.name
        npath = f"{path}.{kind}.name"
        if name in ("out", ".env"):
            raise SpecError(f'{npath}: an input cannot be named "{name}" (reserved for /pfs/{name})', npath)
        _check_name("input", name, npath)
        if name in names:
            raise SpecError(f'{npath}: input name "{name}" was used more than once', npath)
        names.add(name)
    elif inp.union:
        union_names: set[str] = set()
        for i, child in enumerate(inp.union):
            branch_names = set(names)
            _validate_names(child, branch_names, f"{path}.union[{i}]")
            union_names |= branch_names
        names |= union_names
    else:
        for kind in ("cross", "join", "group"):
            for i, child in enumerate(getattr(inp, kind)):
                _validate_names(child, names, f"{path}.{kind}[{i}]")


def _pfs_inputs(inp: pps.Input, path: str) -> list[tuple[str, pps.PfsInput]]:
    if _present(inp.pfs):
        return [(f"{path}.pfs", inp.pfs)]
    out: list[tuple[str, pps.PfsInput]] = []
    for kind in ("cross", "union", "join", "group"):
        for i, child in enumerate(getattr(inp, kind)):
            out.extend(_pfs_inputs(child, f"{path}.{kind}[{i}]"))
    return out


def cron_inputs(inp: pps.Input | None) -> list[pps.CronInput]:
    """Every cron input of `inp`, in input order."""
    if inp is None:
        return []
    if _present(inp.cron):
        return [inp.cron]
    return [c for kind in ("cross", "union", "join", "group") for child in getattr(inp, kind)
            for c in cron_inputs(child)]  # fmt: skip


# --- defaults --------------------------------------------------------------------------------------


def apply_defaults(req: pps.CreatePipelineRequest) -> pps.CreatePipelineRequest:
    """A copy of `req` with pachd's defaults filled in (see module docstring)."""
    # A wire round trip copies exactly what is set (deepcopy would mark materialised defaults as set).
    eff = pps.CreatePipelineRequest().parse(bytes(req))
    if not eff.pipeline.project.name:
        eff.pipeline.project = pfs.Project(name="default")
    project = eff.pipeline.project.name
    if not eff.transform.image:
        eff.transform.image = DEFAULT_IMAGE
    if eff.datum_tries == 0:
        eff.datum_tries = DEFAULT_DATUM_TRIES
    if eff.parallelism_spec.constant == 0:
        eff.parallelism_spec = pps.ParallelismSpec(constant=1)
    if not eff.output_branch:
        eff.output_branch = "master"
    if not eff.reprocess_spec:
        eff.reprocess_spec = "until_success"
    for _path, p in _pfs_inputs(eff.input, "input"):
        apply_pfs_input_defaults(p, project)
    for c in cron_inputs(eff.input):
        apply_cron_input_defaults(c, eff.pipeline.name, project, datetime.now(UTC))
    return eff


def effective_spec_json(req: pps.CreatePipelineRequest) -> str:
    """protojson of the request with defaults applied (PipelineInfo.effective_spec_json)."""
    return request_to_json(apply_defaults(req))
