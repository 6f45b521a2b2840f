"""pachd's glob semantics (github.com/pachyderm/ohmyglob with ``/`` as separator).

``*`` matches within one path component, ``**`` across components, ``?`` one character,
``[abc]``/``[!a-z]`` character classes, ``{a,b}`` alternatives, and ``(...)`` capture
groups (used by ``join_on``/``group_by`` as ``$1``). Patterns are cleaned like Go's
``path.Clean("/" + pattern)``; paths are matched without their trailing ``/``.
"""

from __future__ import annotations

import functools
import re

from pachd_lite.errors import InvalidArgument


def clean_pattern(pattern: str) -> str:
    pattern = "/" + pattern.lstrip("/")
    while "//" in pattern:
        pattern = pattern.replace("//", "/")
    if len(pattern) > 1:
        pattern = pattern.rstrip("/") or "/"
    return pattern


@functools.lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile a (cleaned) pachd glob into an anchored regular expression."""
    pattern = clean_pattern(pattern)
    out: list[str] = []
    i, n, braces = 0, len(pattern), 0
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "!^" else i + 1)
            if end < 0:
                raise InvalidArgument(f"glob pattern {pattern!r} has an unterminated '['")
            body = pattern[i + 1 : end]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\")
            out.append(("[^/" if negate else "[") + body + "]")
            i = end
        elif c == "{":
            braces += 1
            out.append("(?:")
        elif c == "}" and braces:
            braces -= 1
            out.append(")")
        elif c == "," and braces:
            out.append("|")
        elif c == "(":
            out.append("(")
        elif c == ")":
            out.append(")")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    if braces:
        raise InvalidArgument(f"glob pattern {pattern!r} has an unterminated '{{'")
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as exc:
        raise InvalidArgument(f"glob pattern {pattern!r} is invalid: {exc}") from exc


def glob_match(pattern: str, path: str) -> re.Match[str] | None:
    """Match a PFS path (``/a/b`` or ``/a/b/``) against a glob."""
    subject = path.rstrip("/") or "/"
    if subject == "/" and clean_pattern(pattern) != "/":
        return None  # the root is a match only for the pattern "/" itself
    return compile_glob(pattern).match(subject)


def glob_replace(pattern: str, path: str, template: str) -> str:
    """ohmyglob's ``Replace``: substitute ``$1``… in ``template`` with capture groups of ``path``."""
    match = glob_match(pattern, path)
    if not match:
        return ""
    return re.sub(r"\$(\d+)", lambda m: match.group(int(m[1])) or "", template)


def literal_prefix(pattern: str) -> str:
    """The leading part of a cleaned pattern without glob characters (for narrowing scans)."""
    pattern = clean_pattern(pattern)
    m = re.search(r"[*?\[{(\\]", pattern)
    return pattern if m is None else pattern[: m.start()]
