"""pachd's glob dialect (github.com/pachyderm/ohmyglob with ``/`` as separator), used by
GlobFile, GetFile/GetFileTAR path globs and pipeline datums.

``*`` and ``?`` stay within one path component, ``**`` crosses components; ``[abc]``,
``[a-z0-9]``, ``[!a-z]`` character classes (never matching ``/``); ``{a,b}`` alternatives;
``(a|b)``, ``@(..)``, ``*(..)``, ``+(..)``, ``?(..)``, ``!(..)`` capture groups, referenced as
``$1``… by ``join_on``/``group_by`` (:func:`glob_replace`); ``\\`` escapes the next character.
Patterns are cleaned like pachd's ``pfsfile.CleanPath``; paths match without their trailing ``/``.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

from pachd_lite.errors import InvalidArgument

__all__ = [
    "GlobSyntaxError",
    "clean_glob",
    "compile_glob",
    "glob_match",
    "glob_replace",
    "literal_prefix",
]


class GlobSyntaxError(InvalidArgument, ValueError):
    """A glob pattern that pachd's glob library would not compile (INVALID_ARGUMENT on the wire)."""


def clean_glob(pattern: str) -> str:
    """pfsfile.CleanPath: absolute, no duplicate or trailing slashes."""
    cleaned = os.path.normpath("/" + pattern.strip())
    return "/" + cleaned.lstrip("/")


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile a glob to an anchored regular expression (see the module docstring)."""
    parser = _GlobParser(clean_glob(pattern))
    body = parser.parse_sequence(stop="")
    if parser.pos != len(parser.text):
        raise GlobSyntaxError(f"glob {pattern!r}: unexpected {parser.text[parser.pos]!r} at {parser.pos}")
    try:
        return re.compile(r"\A" + body + r"\Z", re.DOTALL)
    except re.error as e:
        raise GlobSyntaxError(f"glob {pattern!r}: {e}") from e


class _GlobParser:
    _SEP_DOT = "[^/]"

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def parse_sequence(self, stop: str) -> str:
        out: list[str] = []
        while self.pos < len(self.text):
            c = self._peek()
            if c in stop:
                break
            if c == "\\" and self._peek(1):
                out.append(re.escape(self._peek(1)))
                self.pos += 2
            elif c in "@*+?!" and self._peek(1) == "(":
                self.pos += 2
                out.append(self._capture(c))
            elif c == "(":
                self.pos += 1
                out.append(self._capture("@"))
            elif c == "*" and self._peek(1) == "*":
                self.pos += 2
                out.append(".*")
            elif c == "*":
                self.pos += 1
                out.append(self._SEP_DOT + "*")
            elif c == "?":
                self.pos += 1
                out.append(self._SEP_DOT)
            elif c == "[":
                out.append(self._char_class())
            elif c == "{":
                self.pos += 1
                out.append(self._any_of())
            else:
                out.append(re.escape(c))
                self.pos += 1
        return "".join(out)

    def _alternatives(self, sep: str, close: str) -> list[str]:
        alts = []
        while True:
            alts.append(self.parse_sequence(stop=sep + close))
            c = self._peek()
            if c == sep:
                self.pos += 1
                continue
            if c == close:
                self.pos += 1
                return alts
            raise GlobSyntaxError(f"glob {self.text!r}: missing {close!r}")

    def _capture(self, quantifier: str) -> str:
        body = "|".join(self._alternatives("|", ")"))
        if quantifier == "@":
            return f"({body})"
        if quantifier == "!":
            return f"((?:(?!(?:{body})(?:/|\\Z)){self._SEP_DOT})*)"
        return f"((?:{body}){quantifier})"

    def _any_of(self) -> str:
        return "(?:" + "|".join(self._alternatives(",", "}")) + ")"

    def _char_class(self) -> str:
        start = self.pos + 1
        negate = self.text[start : start + 1] in ("!", "^")
        if negate:
            start += 1
        end = self.text.find("]", start + 1)  # a "]" right after "[" or "[!" is a member
        if end < 0:
            raise GlobSyntaxError(f"glob {self.text!r}: missing ']'")
        inner = self.text[start:end]
        self.pos = end + 1
        parts: list[str] = []
        i = 0
        while i < len(inner):
            if i + 2 < len(inner) and inner[i + 1] == "-":
                if inner[i] > inner[i + 2]:
                    raise GlobSyntaxError(f"glob {self.text!r}: bad range {inner[i : i + 3]!r}")
                parts.append(f"{re.escape(inner[i])}-{re.escape(inner[i + 2])}")
                i += 3
            else:
                parts.append(re.escape(inner[i]))
                i += 1
        return f"[^/{''.join(parts)}]" if negate else f"[{''.join(parts)}]"


def glob_match(pattern: str, path: str) -> re.Match[str] | None:
    """Match a PFS path (``/a/b`` or ``/a/b/``) against a glob; the root matches only ``/``."""
    subject = path.rstrip("/") or "/"
    if subject == "/" and clean_glob(pattern) != "/":
        return None
    return compile_glob(pattern).match(subject)


_TEMPLATE_RE = re.compile(r"\$(?:\{(\d+)\}|(\d+)|(\$))")


def glob_replace(pattern: str, path: str, template: str) -> str:
    """ohmyglob Replace on the path without its trailing "/": expand `$N`/`${N}` (`$$` = "$")
    from the glob's capture groups; the path is returned unchanged if it does not match."""
    if not template:
        return ""
    p = path.rstrip("/")
    m = compile_glob(pattern).match(p)
    if m is None:
        return p

    def expand(t: re.Match[str]) -> str:
        if t.group(3):
            return "$"
        n = int(t.group(1) or t.group(2))
        if n > (m.re.groups or 0):
            return ""
        return m.group(n) or ""

    return _TEMPLATE_RE.sub(expand, template)


def literal_prefix(pattern: str) -> str:
    """The leading part of a cleaned pattern without glob characters (for narrowing scans)."""
    pattern = clean_glob(pattern)
    m = re.search(r"[*?\[{(\\]", pattern)
    return pattern if m is None else pattern[: m.start()]
