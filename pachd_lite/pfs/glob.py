"""pachd's glob dialect (github.com/pachyderm/ohmyglob with ``/`` as separator), used by
GlobFile, GetFile/GetFileTAR path globs and pipeline datums.

``*`` and ``?`` stay within one path component, ``**`` crosses components; ``[abc]``,
``[a-z0-9]``, ``[!a-z]`` character classes (never matching ``/``); ``{a,b}`` alternatives;
``(a|b)``, ``@(..)``, ``*(..)``, ``+(..)``, ``?(..)``, ``!(..)`` capture groups, referenced as
``$1``… by ``join_on``/``group_by`` (:func:`glob_replace`); ``\\`` escapes the next character.
Patterns are cleaned like pachd's ``pfsfile.CleanPath``; paths match without their trailing ``/``.

Matching never backtracks: a pattern compiles to an NFA, run as a lazily built DFA for yes/no
answers and as a Pike VM (threads in priority order, so captures are the ones a backtracking
matcher would pick) for capture groups. The cost is linear in the path length times the pattern
size, whatever the pattern: ``/*a*a*a*a*a*a*b`` against a long name costs what ``/*`` does.
``!(x)`` (no component starting here matches ``x``) is answered per position by one backward
pass over the path before the forward one.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

from pachd_lite import calls
from pachd_lite.errors import InvalidArgument

__all__ = [
    "MAX_GLOB_LENGTH",
    "CompiledGlob",
    "GlobMatch",
    "GlobSyntaxError",
    "clean_glob",
    "compile_glob",
    "glob_match",
    "glob_replace",
    "literal_prefix",
]

MAX_GLOB_LENGTH = 4096  # characters; the NFA has about one state per character
_DFA_STATE_CAP = 2_000  # cached DFA states per pattern (256 patterns cached) before it starts over


class GlobSyntaxError(InvalidArgument, ValueError):
    """A glob pattern that pachd's glob library would not compile (INVALID_ARGUMENT on the wire)."""


def clean_glob(pattern: str) -> str:
    """pfsfile.CleanPath: absolute, no duplicate or trailing slashes."""
    cleaned = os.path.normpath("/" + pattern.strip())
    return "/" + cleaned.lstrip("/")


# --- parsing: glob text -> syntax tree ---------------------------------------------------------
# Nodes are tuples: ("chr", c) | ("any",) non-separator | ("all",) anything | ("cls", ranges, negated)
# | ("seq", [nodes]) | ("alt", [nodes]) | ("grp", n, node, quantifier) | ("neg", n, node)


class _GlobParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.groups = 0

    def _peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def parse_sequence(self, stop: str) -> tuple:
        out: list[tuple] = []
        while self.pos < len(self.text):
            c = self._peek()
            if c in stop:
                break
            if c == "\\" and self._peek(1):
                out.append(("chr", self._peek(1)))
                self.pos += 2
            elif c in "@*+?!" and self._peek(1) == "(":
                self.pos += 2
                out.append(self._capture(c))
            elif c == "(":
                self.pos += 1
                out.append(self._capture("@"))
            elif c == "*" and self._peek(1) == "*":
                self.pos += 2
                out.append(("grp", 0, ("all",), "*"))
            elif c == "*":
                self.pos += 1
                out.append(("grp", 0, ("any",), "*"))
            elif c == "?":
                self.pos += 1
                out.append(("any",))
            elif c == "[":
                out.append(self._char_class())
            elif c == "{":
                self.pos += 1
                out.append(("alt", self._alternatives(",", "}")))
            else:
                out.append(("chr", c))
                self.pos += 1
        return ("seq", out)

    def _alternatives(self, sep: str, close: str) -> list[tuple]:
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

    def _capture(self, quantifier: str) -> tuple:
        self.groups += 1
        number = self.groups  # numbered by their opening, outer before inner, like regex groups
        body = ("alt", self._alternatives("|", ")"))
        if quantifier == "!":
            return ("neg", number, body)
        return ("grp", number, body, quantifier)

    def _char_class(self) -> tuple:
        start = self.pos + 1
        negate = self.text[start : start + 1] in ("!", "^")
        if negate:
            start += 1
        end = self.text.find("]", start + 1)  # a "]" right after "[" or "[!" is a member
        if end < 0:
            raise GlobSyntaxError(f"glob {self.text!r}: missing ']'")
        inner = self.text[start:end]
        self.pos = end + 1
        ranges: list[tuple[str, str]] = []
        i = 0
        while i < len(inner):
            if i + 2 < len(inner) and inner[i + 1] == "-":
                if inner[i] > inner[i + 2]:
                    raise GlobSyntaxError(f"glob {self.text!r}: bad range {inner[i : i + 3]!r}")
                ranges.append((inner[i], inner[i + 2]))
                i += 3
            else:
                ranges.append((inner[i], inner[i]))
                i += 1
        return ("cls", tuple(ranges), negate)


# --- compiling: syntax tree -> NFA program -----------------------------------------------------
# Instructions: ("chr", c) ("any",) ("all",) ("cls", ranges, negated) consume one character;
# ("split", a, b) tries a before b; ("jmp", a); ("save", slot); ("not", k) holds where
# negative-lookahead k does; ("match",).


class _Program:
    def __init__(self) -> None:
        self.code: list[tuple] = []
        self.lookaheads: list[_Program] = []  # bodies of !(..), each compiled on its own

    def emit(self, *ins: object) -> int:
        self.code.append(tuple(ins))
        return len(self.code) - 1

    def patch(self, at: int, *ins: object) -> None:
        self.code[at] = tuple(ins)


def _compile(node: tuple, prog: _Program, reverse: bool = False) -> None:
    kind = node[0]
    if kind in ("chr", "any", "all", "cls"):
        prog.emit(*node)
    elif kind == "seq":
        for child in reversed(node[1]) if reverse else node[1]:
            _compile(child, prog, reverse)
    elif kind == "alt":
        _compile_alt(node[1], prog, reverse)
    elif kind == "grp":
        _, number, body, quantifier = node
        if number and not reverse:
            prog.emit("save", 2 * number)
        if quantifier == "@":
            _compile(body, prog, reverse)
        elif quantifier == "?":
            split = prog.emit("split", 0, 0)
            _compile(body, prog, reverse)
            prog.patch(split, "split", split + 1, len(prog.code))
        else:  # "*" or "+": greedy loop
            if quantifier == "+":
                _compile(body, prog, reverse)
            loop = prog.emit("split", 0, 0)
            _compile(body, prog, reverse)
            prog.emit("jmp", loop)
            prog.patch(loop, "split", loop + 1, len(prog.code))
        if number and not reverse:
            prog.emit("save", 2 * number + 1)
    elif kind == "neg":
        # ((?:(?!body(?:/|$))[^/])*): component characters while body cannot match from here
        _, number, body = node
        inner = _Program()
        _compile(body, inner, reverse=True)
        inner.emit("match")
        prog.lookaheads.append(inner)
        k = len(prog.lookaheads) - 1
        if not reverse:
            prog.emit("save", 2 * number)
        loop = prog.emit("split", 0, 0)
        if reverse:
            prog.emit("any")
            prog.emit("not", k)
        else:
            prog.emit("not", k)
            prog.emit("any")
        prog.emit("jmp", loop)
        prog.patch(loop, "split", loop + 1, len(prog.code))
        if not reverse:
            prog.emit("save", 2 * number + 1)
    else:  # pragma: no cover - the parser makes no other nodes
        raise AssertionError(kind)


def _compile_alt(alts: list[tuple], prog: _Program, reverse: bool) -> None:
    jumps = []
    for i, alt in enumerate(alts):
        if i < len(alts) - 1:
            split = prog.emit("split", 0, 0)
            _compile(alt, prog, reverse)
            jumps.append(prog.emit("jmp", 0))
            prog.patch(split, "split", split + 1, len(prog.code))
        else:
            _compile(alt, prog, reverse)
    for j in jumps:
        prog.patch(j, "jmp", len(prog.code))


def _accepts(ins: tuple, c: str) -> bool:
    kind = ins[0]
    if kind == "chr":
        return c == ins[1]
    if kind == "any":
        return c != "/"
    if kind == "all":
        return True
    if kind == "match":
        return False
    inside = any(lo <= c <= hi for lo, hi in ins[1])
    return (not inside and c != "/") if ins[2] else inside


# --- running ----------------------------------------------------------------------------------


def _closure(code: list[tuple], starts: list[int], holds) -> list[int]:
    """Consuming/match instructions reachable from ``starts`` without input, in priority order."""
    out: list[int] = []
    seen: set[int] = set()
    stack = list(reversed(starts))
    while stack:
        pc = stack.pop()
        if pc in seen:
            continue
        seen.add(pc)
        ins = code[pc]
        op = ins[0]
        if op == "split":
            stack.append(ins[2])
            stack.append(ins[1])
        elif op == "jmp":
            stack.append(ins[1])
        elif op == "save":
            stack.append(pc + 1)
        elif op == "not":
            if holds(ins[1]):
                stack.append(pc + 1)
        else:
            out.append(pc)
    return out


def _lookahead_sets(prog: _Program, text: str) -> list[set[int]]:
    """For each !(..) body: the positions i where the body matches text[i:j] for a component end j."""
    sets: list[set[int]] = []
    for inner in prog.lookaheads:
        inner_sets = _lookahead_sets(inner, text)
        code = inner.code
        found: set[int] = set()
        n = len(text)
        current: list[int] = []
        for pos in range(n, -1, -1):
            # at position pos (scanning backwards) a body match may end here if pos is a component end
            starts = [pc + 1 for pc in current if _accepts(code[pc], text[pos])] if pos < n else []

            def holds(k: int, pos: int = pos, inner_sets: list[set[int]] = inner_sets) -> bool:
                return pos not in inner_sets[k]

            if pos == n or text[pos] == "/":
                starts.append(0)
            reached = _closure(code, starts, holds)
            current = [pc for pc in reached if code[pc][0] != "match"]
            if len(current) < len(reached):
                found.add(pos)
            if pos % 256 == 0:
                calls.check()
        sets.append(found)
    return sets


class GlobMatch:
    """A successful match; :meth:`group` gives capture groups (computed on first use)."""

    def __init__(self, glob: CompiledGlob, subject: str) -> None:
        self._glob = glob
        self.string = subject
        self._spans: tuple | None = None

    def group(self, n: int = 0) -> str | None:
        if n == 0:
            return self.string
        if self._spans is None:
            self._spans = self._glob._captures(self.string)
        start, end = self._spans[2 * n], self._spans[2 * n + 1]
        if start is None or end is None:
            return None
        return self.string[start:end]

    def __bool__(self) -> bool:
        return True


class _State:
    __slots__ = ("accept", "dead", "next", "pcs")

    def __init__(self, pcs: tuple[int, ...], accept: bool) -> None:
        self.pcs = pcs
        self.accept = accept
        self.dead = not pcs and not accept
        self.next: dict[str, _State] = {}


class CompiledGlob:
    """A compiled pattern; ``match(path)`` anchors at both ends, like ``re.fullmatch``."""

    def __init__(self, pattern: str, tree: tuple, groups: int) -> None:
        self.pattern = pattern
        self.groups = groups
        self._prog = _Program()
        _compile(tree, self._prog)
        self._prog.emit("match")
        self._states: dict[tuple[int, ...], _State] = {}
        self._start: _State | None = None

    # yes/no: a DFA built lazily, one state per set of NFA threads
    def _state(self, pcs: list[int]) -> _State:
        key = tuple(sorted(pcs))
        state = self._states.get(key)
        if state is None:
            if len(self._states) >= _DFA_STATE_CAP:
                self._states.clear()
                self._start = None
            code = self._prog.code
            consuming = tuple(pc for pc in key if code[pc][0] != "match")
            state = self._states.setdefault(key, _State(consuming, len(consuming) < len(key)))
        return state

    def _step(self, state: _State, c: str) -> _State:
        calls.check()
        code = self._prog.code
        nxt = self._state(
            _closure(code, [pc + 1 for pc in state.pcs if _accepts(code[pc], c)], lambda k: True)
        )
        state.next[c] = nxt
        return nxt

    def match(self, subject: str) -> GlobMatch | None:
        if self._prog.lookaheads:
            return GlobMatch(self, subject) if self._nfa_accepts(subject) else None
        state = self._start
        if state is None:
            state = self._start = self._state(_closure(self._prog.code, [0], lambda k: True))
        for c in subject:
            nxt = state.next.get(c)
            state = nxt if nxt is not None else self._step(state, c)
            if state.dead:
                return None
        return GlobMatch(self, subject) if state.accept else None

    def _nfa_accepts(self, subject: str) -> bool:
        code = self._prog.code
        sets = _lookahead_sets(self._prog, subject)
        threads = _closure(code, [0], lambda k: 0 not in sets[k])
        for pos, c in enumerate(subject):
            if pos % 256 == 0:
                calls.check()

            def holds(k: int, at: int = pos + 1) -> bool:
                return at not in sets[k]

            threads = _closure(code, [pc + 1 for pc in threads if _accepts(code[pc], c)], holds)
            if not threads:
                return False
        return any(code[pc][0] == "match" for pc in threads)

    # captures: a Pike VM, threads kept in the order a backtracking matcher would try them
    def _captures(self, subject: str) -> tuple:
        code = self._prog.code
        sets = _lookahead_sets(self._prog, subject)
        slots = 2 * (self.groups + 1)

        def add(threads: list, pc: int, caps: tuple, pos: int, seen: set[int]) -> None:
            stack = [(pc, caps)]
            while stack:
                pc, caps = stack.pop()
                if pc in seen:
                    continue
                seen.add(pc)
                ins = code[pc]
                op = ins[0]
                if op == "split":
                    stack.append((ins[2], caps))
                    stack.append((ins[1], caps))
                elif op == "jmp":
                    stack.append((ins[1], caps))
                elif op == "save":
                    stack.append((pc + 1, caps[: ins[1]] + (pos,) + caps[ins[1] + 1 :]))
                elif op == "not":
                    if pos not in sets[ins[1]]:
                        stack.append((pc + 1, caps))
                else:
                    threads.append((pc, caps))

        threads: list = []
        add(threads, 0, (None,) * slots, 0, set())
        for pos, c in enumerate(subject):
            if pos % 256 == 0:
                calls.check()
            nxt: list = []
            seen: set[int] = set()
            for pc, caps in threads:
                ins = code[pc]
                if ins[0] == "match":
                    continue  # a match before the end of the path does not count
                if _accepts(ins, c):
                    add(nxt, pc + 1, caps, pos + 1, seen)
            threads = nxt
        for pc, caps in threads:
            if code[pc][0] == "match":
                return caps
        return (None,) * slots


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> CompiledGlob:
    """Compile a glob (see the module docstring); ``.match(path)`` is a full match."""
    if len(pattern) > MAX_GLOB_LENGTH:
        raise GlobSyntaxError(
            f"glob {pattern[:80]!r}…: {len(pattern)} characters, more than the limit of {MAX_GLOB_LENGTH}"
        )
    parser = _GlobParser(clean_glob(pattern))
    tree = parser.parse_sequence(stop="")
    if parser.pos != len(parser.text):
        raise GlobSyntaxError(f"glob {pattern!r}: unexpected {parser.text[parser.pos]!r} at {parser.pos}")
    return CompiledGlob(pattern, tree, parser.groups)


def glob_match(pattern: str, path: str) -> GlobMatch | None:
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
    glob = compile_glob(pattern)
    m = glob.match(p)
    if m is None:
        return p

    def expand(t: re.Match[str]) -> str:
        if t.group(3):
            return "$"
        n = int(t.group(1) or t.group(2))
        if n > glob.groups:
            return ""
        return m.group(n) or ""

    return _TEMPLATE_RE.sub(expand, template)


def literal_prefix(pattern: str) -> str:
    """The leading part of a cleaned pattern without glob characters (for narrowing scans)."""
    pattern = clean_glob(pattern)
    m = re.search(r"[*?\[{(\\]", pattern)
    return pattern if m is None else pattern[: m.start()]
