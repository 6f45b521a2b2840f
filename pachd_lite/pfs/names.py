"""Name rules, path cleaning and commit ancestry syntax, as pachd 2.12 has them."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from pachd_lite.errors import InvalidArgument

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
UUID_RE = re.compile(r"^[\da-f]{12}4[\da-f]{19}$")
PROJECT_NAME_LIMIT = 51
ANCESTRY_RE = re.compile(r"^(?P<base>[^\^~.]+)(?P<ops>(?:[\^~]\d*)+)$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Limits on file paths, checked wherever a path enters (writes and reads): deeper or longer paths
# are refused with INVALID_ARGUMENT. Both fit what a Linux filesystem can hold (PATH_MAX 4096),
# which pipelines need when they place files in a datum's sandbox.
MAX_PATH_DEPTH = 256  # components, e.g. /a/b/c has 3
MAX_PATH_BYTES = 4096  # UTF-8 bytes of the cleaned path
ROOT_OFFSET_RE = re.compile(r"^(?P<base>[^\^~.]+)\.(?P<n>\d+)$")


def new_id() -> str:
    """A commit-set id as pachd mints them: uuid4 hex without dashes."""
    return uuid.uuid4().hex


_TXN_COMMIT_SET: ContextVar[str | None] = ContextVar("pachd_lite_txn_commit_set", default=None)


def new_commit_set_id() -> str:
    """The id for a write's commit set: fresh, or the running transaction's one."""
    return _TXN_COMMIT_SET.get() or new_id()


@contextlib.contextmanager
def one_commit_set(commit_set: str) -> Iterator[None]:
    """Every write inside shares ``commit_set`` (a transaction_v2 transaction)."""
    token = _TXN_COMMIT_SET.set(commit_set)
    try:
        yield
    finally:
        _TXN_COMMIT_SET.reset(token)


def is_commit_id(text: str) -> bool:
    return bool(UUID_RE.match(text))


def validate_name(kind: str, name: str) -> None:
    if not name:
        raise InvalidArgument(f"{kind} name must not be empty")
    if not NAME_RE.match(name):
        raise InvalidArgument(
            f"{kind} name {name!r} is invalid: only alphanumeric characters, underscores and dashes are allowed"
        )


def validate_project_name(name: str) -> None:
    if name == "default":
        return
    validate_name("project", name)
    if not name[0].isalnum():
        raise InvalidArgument(f"project name {name!r} must start with a letter or a digit")
    if len(name) > PROJECT_NAME_LIMIT:
        raise InvalidArgument(f"project name {name!r} is longer than {PROJECT_NAME_LIMIT} characters")


def short_path(path: str, keep: int = 60) -> str:
    """A path cut to fit an error message: its start and end around an ellipsis."""
    return path if len(path) <= 2 * keep else f"{path[:keep]}…{path[-keep:]}"


def clean_path(path: str) -> str:
    """Normalise a PFS path to ``/a/b`` form; ``..`` components, control characters and paths
    over :data:`MAX_PATH_DEPTH` components or :data:`MAX_PATH_BYTES` bytes are refused."""
    if path and CONTROL_RE.search(path):
        raise InvalidArgument(f"path {short_path(path)!r} is invalid: control characters are not allowed")
    if len(path) > 4 * MAX_PATH_BYTES:  # not worth splitting
        raise InvalidArgument(
            f"path {short_path(path)!r} is invalid: longer than the limit of {MAX_PATH_BYTES} bytes"
        )
    parts = []
    for part in (path or "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidArgument(f"path {short_path(path)!r} is invalid: '..' components are not allowed")
        parts.append(part)
    if len(parts) > MAX_PATH_DEPTH:
        raise InvalidArgument(
            f"path {short_path(path)!r} is invalid: {len(parts)} levels deep, more than the limit of "
            f"{MAX_PATH_DEPTH}"
        )
    cleaned = "/" + "/".join(parts)
    size = len(cleaned.encode("utf-8", "surrogatepass"))
    if size > MAX_PATH_BYTES:
        raise InvalidArgument(
            f"path {short_path(path)!r} is invalid: {size} bytes long, more than the limit of {MAX_PATH_BYTES}"
        )
    return cleaned


def parent_dir(path: str) -> str:
    """``/a/b/c`` -> ``/a/b/``; ``/a`` -> ``/``."""
    head = path.rsplit("/", 1)[0]
    return head + "/" if head else "/"


@dataclass(frozen=True)
class Ancestry:
    """``base`` followed by a walk: ``back`` parents, or the ``from_root``-th commit (1-based)."""

    base: str
    back: int = 0
    from_root: int = 0


def parse_ancestry(text: str) -> Ancestry:
    """Parse ``master``, ``master^``, ``master^2``, ``master~3``, ``master^^``, ``master.1``."""
    match = ROOT_OFFSET_RE.match(text)
    if match:
        return Ancestry(base=match["base"], from_root=int(match["n"]))
    match = ANCESTRY_RE.match(text)
    if not match:
        return Ancestry(base=text)
    back = 0
    for op in re.findall(r"[\^~]\d*", match["ops"]):
        back += int(op[1:]) if len(op) > 1 else 1
    return Ancestry(base=match["base"], back=back)
