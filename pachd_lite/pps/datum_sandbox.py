"""A worker's datum sandbox, emptied between datums instead of removed and made again.

Every datum runs in a fresh-looking sandbox: ``<sandbox>/pfs/out`` and nothing else. Removing
the folders after each datum and making them again costs inodes: on ext4 without a journal
(``recently_deleted`` in ialloc.c) every new inode is looked for past the inodes deleted in the
last seconds, so a job of many short datums makes each file or folder it creates slower, and
the job's datum meta at the end slowest of all. Emptying keeps the three folders (their inodes)
and removes everything else; an input folder (``/pfs/<input>``) is kept, emptied, only for a next
datum that has that input (placement fills it again), so no datum sees another's input names.

A folder is reused only if user code left it as it was made or placed (a real folder with the
same inode, mode and owner) and emptying left nothing behind; otherwise the sandbox is removed and made anew.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

_SKELETON = ("", "pfs", "pfs/out")  # relative to the sandbox


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    return st.st_ino, st.st_mode, st.st_uid, st.st_gid


class DatumSandbox:
    """One worker's sandbox folder: :meth:`fresh` before a datum, :meth:`done` after it."""

    def __init__(self, path: Path, prepare: Callable[[Path], None]) -> None:
        self.path = path
        self._prepare = prepare  # makes <path>/pfs/out (and hands it to the run-as user)
        self._made: tuple | None = None  # the skeleton's identities when made
        self._inputs: dict[str, tuple | None] = {}  # /pfs/<input> folders as placement left them

    def placed(self, names: set[str]) -> None:
        """The datum's inputs are placed: remember their folders (kept for a next datum's same input)."""
        self._inputs = {name: _identity(self.path / "pfs" / name) for name in names}

    def fresh(self, inputs: set[str] = frozenset()) -> Path:
        """The sandbox, holding only ``pfs/out`` and empty folders of ``inputs`` (the datum's
        input names) kept from the datum before."""
        if not self._reusable(inputs):
            shutil.rmtree(self.path, ignore_errors=True)
            self._prepare(self.path)
            self._made = self._skeleton()
        self._inputs = {}
        return self.path

    def done(self) -> None:
        """Empty the sandbox for the next datum (or remove it, see module docstring)."""
        if not self._reusable(set(self._inputs)):
            shutil.rmtree(self.path, ignore_errors=True)
            self._made = None

    def _reusable(self, inputs: set[str]) -> bool:
        if self._made is None or self._skeleton() != self._made:
            return False
        keep = {n for n in inputs if n != "out" and self._inputs.get(n) is not None}
        keep = {n for n in keep if _identity(self.path / "pfs" / n) == self._inputs[n]}
        self._inputs = {n: self._inputs[n] for n in keep}
        return self._empty(keep)

    def _skeleton(self) -> tuple:
        return tuple(_identity(self.path / rel) for rel in _SKELETON)

    def _empty(self, inputs: set[str]) -> bool:
        """Remove all but the skeleton and the (emptied) ``inputs`` folders; True if only they are left."""
        for rel in (*_SKELETON, *(f"pfs/{n}" for n in inputs)):
            folder = self.path / rel
            keep = {"pfs"} if rel == "" else ({"out", *inputs} if rel == "pfs" else set())
            try:
                names = os.listdir(folder)
            except OSError:
                return False
            for name in names:
                if name in keep:
                    continue
                child = folder / name
                if os.path.isdir(child) and not os.path.islink(child):
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    try:
                        os.unlink(child)
                    except OSError:
                        return False
        left = {"": ["pfs"], "pfs": sorted({"out", *inputs}), "pfs/out": []}
        left.update({f"pfs/{n}": [] for n in inputs})
        try:
            return all(sorted(os.listdir(self.path / rel)) == want for rel, want in left.items())
        except OSError:
            return False
