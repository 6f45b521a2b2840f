"""Pipeline specs: pachd's validation rules, defaults, effective spec (JSON via pachd_lite.protojson).

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

import json
import re
from datetime import UTC, datetime, timedelta

from pachyderm_sdk.api import pfs, pps

from pachd_lite import cronspec, protojson
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


def parse_create_pipeline_request(json_text: str) -> pps.CreatePipelineRequest:
    """Parse a pipeline spec (protojson of CreatePipelineRequest); see module docstring."""
    try:
        return protojson.parse(pps.CreatePipelineRequest, json_text, "pipeline spec")
    except protojson.ProtoJsonError as e:
        raise SpecError(str(e), e.field) from e


def request_to_json(req: pps.CreatePipelineRequest) -> str:
    """protojson (lowerCamelCase, 64-bit ints as strings, durations as "600s") of `req`."""
    return protojson.dumps(req)


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
    if not protojson.is_set(req.pipeline) or not req.pipeline.name:
        raise SpecError("invalid pipeline spec: pipeline.name is required", "pipeline.name")
    project = req.pipeline.project.name if protojson.is_set(req.pipeline.project) else ""
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

    if not protojson.is_set(req.transform):
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

    if not protojson.is_set(req.input):
        raise SpecError("invalid pipeline spec: input is required", "input")
    _validate_input(req.input, "input")
    _validate_names(req.input, set(), "input")
    for path, pfs_input in _pfs_inputs(req.input, "input"):
        if pfs_input.repo == name and (pfs_input.project or project) == project:
            raise SpecError(f"{path}.repo: pipeline {name} cannot read its own output repo", f"{path}.repo")


def _check_unsupported(req: pps.CreatePipelineRequest) -> None:
    if protojson.is_set(req.tf_job):
        raise SpecError("tf_job is not supported yet", "tf_job")
    if protojson.is_set(req.transform):
        _validate_secrets(req.transform.secrets)
    if req.s3_out:
        raise SpecError(_NOT_SUPPORTED.format("s3_out (the S3 gateway)"), "s3_out")
    if protojson.is_set(req.service):
        raise SpecError(_NOT_SUPPORTED.format("service pipelines"), "service")
    if protojson.is_set(req.spout):
        raise SpecError(_NOT_SUPPORTED.format("spout pipelines"), "spout")
    if protojson.is_set(req.egress):
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
    if not protojson.is_set(req.transform):
        return []
    return [(f"transform.secrets[{i}]", m.name, m.key) for i, m in enumerate(req.transform.secrets)]


_INPUT_KINDS = ("pfs", "cross", "union", "join", "group", "cron")


def input_kinds(inp: pps.Input) -> list[str]:
    """The kinds set on ``inp`` (pfs, cross, union, join, group, cron), in that order."""
    kinds = []
    for kind in _INPUT_KINDS:
        value = getattr(inp, kind)
        if (isinstance(value, list) and value) or (not isinstance(value, list) and protojson.is_set(value)):
            kinds.append(kind)
    return kinds


def _validate_input(inp: pps.Input, path: str) -> None:
    kinds = input_kinds(inp)
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
    if protojson.is_set(inp.pfs) or protojson.is_set(inp.cron):
        kind = "pfs" if protojson.is_set(inp.pfs) else "cron"
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
    if protojson.is_set(inp.pfs):
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
    if protojson.is_set(inp.cron):
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
