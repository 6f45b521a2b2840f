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


def clean_path(path: str) -> str:
    """Normalise a PFS path to ``/a/b`` form; ``..`` components and control characters are refused."""
    if path and CONTROL_RE.search(path):
        raise InvalidArgument(f"path {path!r} is invalid: control characters are not allowed")
    parts = []
    for part in (path or "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidArgument(f"path {path!r} is invalid: '..' components are not allowed")
        parts.append(part)
    return "/" + "/".join(parts)


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
