"""Checks on local files before they are pushed: which files to take, and whether each is usable.

Run before anything is committed, so a file that fails never reaches a repo (and never fails
every later pipeline run on the same branch).
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from pachflow.exceptions import InvalidInputFile
from pachflow.upload import UploadItem

HEADER_BYTES = 64 * 1024

# A check gets the local file and its path in the repo; it returns None when the file is fine,
# else the reason it is refused.
FileCheck = Callable[[Path, str], "str | None"]


def select(items: Sequence[UploadItem], include: str | Sequence[str] | None) -> tuple[list, list]:
    """(kept, left out): items whose file name matches one of the ``include`` patterns (``*.csv``).

    ``None`` keeps everything. Patterns match the file's base name, case-sensitively, like
    ``fnmatch``; a pattern containing ``/`` matches the whole path in the repo.
    """
    if include is None:
        return list(items), []
    patterns = [include] if isinstance(include, str) else list(include)
    kept, left_out = [], []
    for item in items:
        name = PurePosixPath(item.path).name
        match = any(
            fnmatch.fnmatchcase(item.path if "/" in pat else name, pat) for pat in patterns if pat.strip()
        )
        (kept if match else left_out).append(item)
    return kept, left_out


def csv_header(path: Path) -> list[str]:
    """Column names on line 1 of a CSV (``.gz`` decompressed); ValueError when it is not CSV text."""
    with path.open("rb") as raw:
        head = raw.read(HEADER_BYTES)
    if head.startswith(b"\x1f\x8b"):
        with gzip.open(path, "rb") as fh:
            head = fh.read(HEADER_BYTES)
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if not line.strip():
        raise ValueError("line 1 is empty (no CSV header)")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("line 1 is not UTF-8 text (not a CSV file?)") from None
    if "\x00" in text:
        raise ValueError("line 1 holds binary data (not a CSV file?)")
    return [name.strip() for name in next(csv.reader(io.StringIO(text)))]


def expected_columns_check(columns: Sequence[str]) -> FileCheck:
    """A check that refuses a CSV whose header lacks any of ``columns`` (extra columns are fine)."""
    wanted = [str(c) for c in columns]

    def check(local: Path, path: str) -> str | None:
        try:
            names = csv_header(local)
        except (OSError, ValueError, EOFError) as err:
            return str(err)
        missing = [c for c in wanted if c not in names]
        if missing:
            got = ",".join(names)
            return (
                f"header lacks column(s) {', '.join(missing)} "
                f"(expected {','.join(wanted)}; got {got[:200]!r})"
            )
        return None

    return check


def validate(items: Sequence[UploadItem], checks: Sequence[FileCheck], *, where: str) -> None:
    """Run every check on every item; raise :class:`InvalidInputFile` listing each refused file."""
    refused = []
    for item in items:
        for check in checks:
            reason = check(item.local, item.path)
            if reason:
                refused.append(f"{item.local} (-> {where}:{item.path}): {reason}")
                break
    if refused:
        raise InvalidInputFile(
            f"refused {len(refused)} of {len(items)} file(s) for {where}; nothing was committed:\n  "
            + "\n  ".join(refused)
        )
