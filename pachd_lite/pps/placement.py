"""Placing a datum's input files into its sandbox (``/pfs/<input name>``)."""

from __future__ import annotations

import os
from pathlib import Path

from pachd_lite.pfs import files
from pachd_lite.pfs.model import PfsContext
from pachd_lite.pps.datums import Datum


class InputPlacementError(Exception):
    """A datum's input file cannot be placed in its sandbox (e.g. a name too long for the host)."""


class Materialiser:
    """Places a datum's input files into a sandbox by hard links from the blob store."""

    def __init__(self, ctx: PfsContext, inputs, snaps) -> None:
        self.ctx = ctx
        self.by_key = {}
        for r in inputs:
            self.by_key.setdefault((r["repo_project"], r["repo_name"]), []).append(r)
        self.snaps = snaps

    def place(self, datum: Datum, pfs_dir: Path) -> None:
        for inp in datum.inputs:
            rows = self.by_key.get((inp.project, inp.repo), [])
            row = next((r for r in rows if r["commit_set"] == inp.commit), rows[0] if rows else None)
            if row is None:
                continue
            snap = self.snaps[row["id"]]
            info = snap.info(inp.path)
            try:
                files.materialise(self.ctx, [info], snap, pfs_dir / inp.name)
            except OSError as e:
                name = os.path.basename(e.filename) if isinstance(e.filename, str) else inp.path
                raise InputPlacementError(
                    f"input {inp.name}: cannot place {inp.repo}@{inp.commit}:{inp.path} in /pfs/{inp.name} "
                    f"({e.strerror}: {name})"
                ) from None
