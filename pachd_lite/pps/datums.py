"""Datums from a pipeline's input, with pachd 2.12's identity and hashing rules.

Public API (stable; the PPS core calls it):

    compute_datums(input: pps.Input,
                   list_matches: Callable[[PfsInputRef, str], list[Match]],
                   salt: str,
                   *, commit_of: Callable[[PfsInputRef], str] | None = None) -> list[Datum]
        One datum per glob match of each PFS input; cross = Cartesian product, union =
        concatenation, join on `join_on` (with `outer_join`), group by `group_by`. An empty match
        gives zero datums (a cross with an empty side gives zero). Order is deterministic.
        `list_matches(ref, glob)` must return what pachd's GlobFile returns for `ref`'s commit:
        paths with a leading "/", directories with a trailing "/", and each entry's content hash.
        `commit_of(ref)` names the input commit the job reads (used for `<input>_COMMIT` and
        `DatumInput.commit`); without it `ref.commit` stays "" and `list_matches` resolves the
        branch head itself.
    datum_id(inputs) -> str            common.DatumID: BLAKE2b-256 over name/repo/branch/path
    datum_hash(id, inputs, salt) -> str common.HashDatum: BLAKE2b-256(id || file hashes || salt)
    datum_env(datum, pfs_root="/pfs") -> dict[str, str]
        The per-datum variables pachd sets: `<input>`, `<input>_COMMIT`,
        `PACH_DATUM_<input>_JOIN_ON`, `PACH_DATUM_<input>_GROUP_BY`, `PACH_DATUM_ID`.
    compile_glob(pattern) -> re.Pattern  pachd's glob dialect, re-exported from pachd_lite.pfs.glob
        (GlobFile uses the same one). `glob_replace(pattern, path, template)` expands `$1`/`${1}`
        like ohmyglob's Replace.
    apply_pfs_input_defaults(pfs, project) -> pps.PfsInput  the one place pachd's input defaults
        are applied (name=repo, branch master, project = `project`, repo_type user); fills `pfs`
        in place and returns it. normalize_pfs_input(pfs, project) is the same on a copy.
    apply_cron_input_defaults(cron, pipeline, project, now) -> pps.CronInput  pachd's cron input
        defaults (repo `<pipeline>_<name>`, project, start = now), in place.
    cron_repo(cron, project) -> RepoRef  the repo a cron input's ticks go to
    cron_as_pfs_input(cron, project) -> pps.PfsInput  what a cron input reads: its repo's master
        with glob "/*", named by the input (pachd's datum.createCron).

Differences from pachd: inputs marked `reference` do not contribute their file hash to the datum
hash (see DESIGN/reference notes); a datum repeated across union branches is kept once.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from pachyderm_sdk.api import pps

# the glob dialect lives in pfs.glob (GlobFile uses it too); re-exported for this module's users
from pachd_lite.pfs.glob import GlobSyntaxError, clean_glob, compile_glob, glob_replace
from pachd_lite.pfs.model import RepoRef
from pachd_lite.protojson import is_set

__all__ = [
    "Datum",
    "DatumInput",
    "GlobSyntaxError",
    "Match",
    "PfsInputRef",
    "compile_glob",
    "compute_datums",
    "datum_env",
    "datum_hash",
    "datum_id",
    "glob_replace",
    "apply_cron_input_defaults",
    "apply_pfs_input_defaults",
    "cron_as_pfs_input",
    "cron_repo",
    "normalize_pfs_input",
]


@dataclass(frozen=True)
class PfsInputRef:
    """One PFS input of a pipeline, as the job reads it."""

    name: str
    project: str
    repo: str
    branch: str
    commit: str = ""
    repo_type: str = "user"


@dataclass(frozen=True)
class Match:
    """One GlobFile result: `path` as pachd returns it ("/a.csv", "/dir/"), `hash` in hex."""

    path: str
    hash: str
    is_dir: bool = False
    size: int = 0


@dataclass(frozen=True)
class DatumInput:
    """One input file (or directory) of a datum; mounted at /pfs/<name>/<path>."""

    name: str
    project: str
    repo: str
    branch: str
    commit: str
    path: str
    file_hash: str
    is_dir: bool = False
    size: int = 0
    join_on: str = ""
    outer_join: bool = False
    group_by: str = ""
    lazy: bool = False
    empty_files: bool = False
    reference: bool = False


@dataclass(frozen=True)
class Datum:
    """A unit of work: `id` is content-independent, `hash` changes iff content or salt changes."""

    id: str
    hash: str
    inputs: tuple[DatumInput, ...] = field(default_factory=tuple)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # an unset Timestamp


# --- identity and hashing (common.DatumID / common.HashDatum) ------------------------------------


def _blake2b256() -> hashlib._Hash:
    return hashlib.blake2b(digest_size=32)


def datum_id(inputs: Sequence[DatumInput]) -> str:
    """Hex BLAKE2b-256 over each input's name, repo, branch and path, each followed by its
    length as a big-endian int64 (pachd's common.DatumID byte layout)."""
    h = _blake2b256()
    for inp in inputs:
        for part in (inp.name, inp.repo, inp.branch, inp.path):
            data = part.encode()
            h.update(data)
            h.update(len(data).to_bytes(8, "big", signed=True))
    return h.hexdigest()


def datum_hash(id_: str, inputs: Sequence[DatumInput], salt: str) -> str:
    """Hex BLAKE2b-256(datum id (hex text) || raw file hash bytes of each input || salt)."""
    h = _blake2b256()
    h.update(id_.encode())
    for inp in inputs:
        if inp.reference:
            continue
        h.update(_hash_bytes(inp.file_hash))
    h.update(salt.encode())
    return h.hexdigest()


def _hash_bytes(file_hash: str) -> bytes:
    try:
        return bytes.fromhex(file_hash)
    except ValueError:
        # Not hex (a core may use another digest text); still content-dependent.
        return file_hash.encode()


def _make_datum(inputs: Sequence[DatumInput], salt: str) -> Datum:
    id_ = datum_id(inputs)
    return Datum(id=id_, hash=datum_hash(id_, inputs, salt), inputs=tuple(inputs))


# --- inputs -> datums ------------------------------------------------------------------------------


def apply_pfs_input_defaults(pfs_input: pps.PfsInput, project: str) -> pps.PfsInput:
    """Fill pachd's defaults into `pfs_input` (in place; returned for chaining).

    `project` is the pipeline's project (an input without one reads its pipeline's project);
    "default" for a bare input such as ListDatum's dry run.
    """
    pfs_input.name = pfs_input.name or pfs_input.repo
    pfs_input.branch = pfs_input.branch or "master"
    pfs_input.project = pfs_input.project or project or "default"
    pfs_input.repo_type = pfs_input.repo_type or "user"
    return pfs_input


def normalize_pfs_input(pfs_input: pps.PfsInput, project: str = "default") -> pps.PfsInput:
    """A copy of `pfs_input` with pachd's defaults filled in (see apply_pfs_input_defaults)."""
    return apply_pfs_input_defaults(replace(pfs_input), project)


def apply_cron_input_defaults(
    cron: pps.CronInput, pipeline: str, project: str, now: datetime
) -> pps.CronInput:
    """Fill pachd's cron input defaults into `cron` (in place; returned for chaining)."""
    cron.repo = cron.repo or f"{pipeline}_{cron.name}"
    cron.project = cron.project or project or "default"
    if cron.start is None or cron.start == _EPOCH:
        cron.start = now
    return cron


def cron_repo(cron: pps.CronInput, project: str = "default") -> RepoRef:
    """The repo a cron input's ticks are committed to (``project``: the pipeline's)."""
    return RepoRef(cron.project or project, cron.repo)


def cron_as_pfs_input(cron: pps.CronInput, project: str = "default") -> pps.PfsInput:
    """The PFS input a cron input is read as: its repo's master, glob "/*", named by the input."""
    repo = cron_repo(cron, project)
    return pps.PfsInput(name=cron.name, project=repo.project, repo=repo.name, branch="master", glob="/*")


def compute_datums(
    input: pps.Input,
    list_matches: Callable[[PfsInputRef, str], list[Match]],
    salt: str,
    *,
    commit_of: Callable[[PfsInputRef], str] | None = None,
    project: str = "default",
) -> list[Datum]:
    """All datums of `input` (see module docstring); `project` is the pipeline's project."""
    rows = _rows(input, list_matches, commit_of, project)
    seen: set[str] = set()
    datums: list[Datum] = []
    for row in rows:
        d = _make_datum(row, salt)
        if d.id in seen:
            continue
        seen.add(d.id)
        datums.append(d)
    return datums


Row = tuple[DatumInput, ...]


def _rows(
    input: pps.Input,
    list_matches: Callable[[PfsInputRef, str], list[Match]],
    commit_of: Callable[[PfsInputRef], str] | None,
    project: str,
) -> list[Row]:
    def _sub(children: list[pps.Input]) -> list[list[Row]]:
        return [_rows(c, list_matches, commit_of, project) for c in children]

    if is_set(input.pfs):
        return _pfs_rows(input.pfs, list_matches, commit_of, project)
    if input.cross:
        return [
            tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*_sub(input.cross))
        ]
    if input.union:
        return [row for sub in _sub(input.union) for row in sub]
    if input.join:
        return _join(_sub(input.join))
    if input.group:
        return _group(_sub(input.group))
    if is_set(input.cron):
        return _pfs_rows(cron_as_pfs_input(input.cron, project), list_matches, commit_of, project)
    raise ValueError("input has no pfs, cross, union, join or group")


def _pfs_rows(
    pfs_input: pps.PfsInput,
    list_matches: Callable[[PfsInputRef, str], list[Match]],
    commit_of: Callable[[PfsInputRef], str] | None,
    project: str,
) -> list[Row]:
    p = normalize_pfs_input(pfs_input, project)
    ref = PfsInputRef(name=p.name, project=p.project, repo=p.repo, branch=p.branch, repo_type=p.repo_type)
    if commit_of is not None:
        ref = replace(ref, commit=commit_of(ref))
    glob = clean_glob(p.glob)
    rows: list[Row] = []
    for m in sorted(list_matches(ref, glob), key=lambda m: m.path):  # GlobFile order: by path
        rows.append(
            (
                DatumInput(
                    name=p.name,
                    project=p.project,
                    repo=p.repo,
                    branch=p.branch,
                    commit=ref.commit,
                    path=m.path,
                    file_hash=m.hash,
                    is_dir=m.is_dir,
                    size=m.size,
                    join_on=glob_replace(glob, m.path, p.join_on),
                    outer_join=p.outer_join,
                    group_by=glob_replace(glob, m.path, p.group_by),
                    lazy=p.lazy,
                    empty_files=p.empty_files,
                    reference=p.reference,
                ),
            )
        )
    return rows


def _key_order(key: str) -> str:
    # pachd sorts join/group keys by the hex BLAKE2b-256 of the key (they are file-set paths).
    h = _blake2b256()
    h.update(key.encode())
    return h.hexdigest()


def _keyed(sub_rows: Iterable[Row], attr: str) -> dict[str, list[DatumInput]]:
    by_key: dict[str, list[DatumInput]] = {}
    for row in sub_rows:
        for inp in row:
            by_key.setdefault(getattr(inp, attr), []).append(inp)
    return by_key


def _join(subs: list[list[Row]]) -> list[Row]:
    keyed = [_keyed(rows, "join_on") for rows in subs]
    all_keys = sorted({k for kd in keyed for k in kd}, key=_key_order)
    out: list[Row] = []
    for key in all_keys:
        present = [kd[key] for kd in keyed if key in kd]
        for combo in itertools.product(*present):
            if len(combo) == len(subs):
                out.append(tuple(combo))
                continue
            kept = tuple(inp for inp in combo if inp.outer_join)
            if kept:
                out.append(kept)
    return out


def _group(subs: list[list[Row]]) -> list[Row]:
    keyed = [_keyed(rows, "group_by") for rows in subs]
    all_keys = sorted({k for kd in keyed for k in kd}, key=_key_order)
    return [tuple(inp for kd in keyed for inp in kd.get(key, ())) for key in all_keys]


def datum_env(datum: Datum, pfs_root: str = "/pfs") -> dict[str, str]:
    """Per-datum environment as pachd's driver.UserCodeEnv sets it (later inputs with the same
    name, e.g. in a group, override earlier ones, as with duplicate exec env entries)."""
    env: dict[str, str] = {}
    for inp in datum.inputs:
        env[inp.name] = os.path.normpath(os.path.join(pfs_root, inp.name, inp.path.lstrip("/")))
        env[f"{inp.name}_COMMIT"] = inp.commit
        if inp.join_on:
            env[f"PACH_DATUM_{inp.name}_JOIN_ON"] = inp.join_on
        if inp.group_by:
            env[f"PACH_DATUM_{inp.name}_GROUP_BY"] = inp.group_by
    env["PACH_DATUM_ID"] = datum.id
    return env
