"""Parsing of values users give as settings: flags, operator arguments, connection extras.

Each parser names the setting in its error, so a wrong value is never silently read as a default.
"""

from __future__ import annotations

from typing import Any

from pachflow.exceptions import ConfigurationError

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "", "none")


def as_bool(name: str, value: Any) -> bool:
    """``value`` as a bool (a bool, or one of true/false, 1/0, yes/no, on/off); anything else is a
    ConfigurationError naming ``name``."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def parse_commit_ref(text: str, name: str) -> tuple[str | None, str, str]:
    """``[project/]repo@ref`` (ref: a commit id or a branch) -> (project or None, repo, ref).

    A malformed value is a ConfigurationError naming ``name``."""
    left, at, ref = str(text).strip().rpartition("@")
    project, _, repo = left.rpartition("/")
    if not at or not repo or not ref:
        raise ConfigurationError(f"{name} {text!r}: expected [PROJECT/]REPO@COMMIT_ID")
    return project or None, repo, ref
