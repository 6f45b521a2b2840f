"""Where pachd-lite's disk goes: bytes per repo, metadata, staging, garbage; peak use during a run.

Measured as allocated blocks (``st_blocks``), each inode once, so a file hard-linked under two
names (a blob and a sandbox input, or a blob and the user's own file) counts once.
- :func:`disk_breakdown`: the storage root split by what holds it. A blob counts for the repo
  that references it first (lowest repo id: blobs are content-addressed, so a file stored by
  two repos costs one blob); a blob no commit or datum references is garbage not collected yet.
- :class:`DiskSampler`: the peak, during a run, of the root plus the sandboxes where jobs run
  (kept outside the root, see pachd_lite/pps/sandboxes.py): inputs are hard links to blobs and
  cost nothing, but job outputs and upload staging files do until they are stored.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from pachd_lite.pps.sandboxes import POINTER

MB = 2**20
DATABASE = "metadata database"
SMALL_BLOBS = "small blobs (datum meta)"
STAGING = "upload staging (tmp/)"
GARBAGE = "unreferenced blobs (not collected yet)"
OTHER = "other"


def files_under(roots: Iterable[Path]) -> Iterable[tuple[Path, os.stat_result]]:
    """Every file under ``roots`` with its lstat (files removed while walking are left out)."""
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = Path(dirpath, name)
                try:
                    yield path, os.lstat(path)
                except OSError:  # removed while walking
                    continue


def allocated_bytes(roots: Iterable[Path]) -> int:
    """Bytes allocated to the files under ``roots``, each inode once."""
    seen: dict[tuple[int, int], int] = {}
    for _, st in files_under(roots):
        seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(seen.values())


def blob_owners(database: Path) -> dict[str, str]:
    """blob hash -> the repo that references it first (``name``, or ``name.type`` if not a user repo)."""
    owners: dict[str, str] = {}
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute(
            "SELECT f.blob, r.name, r.type FROM files f JOIN commits c ON c.id = f.commit_id "
            "JOIN repos r ON r.id = c.repo_id WHERE f.blob != '' ORDER BY r.id"
        ).fetchall()
        # a finished datum's outputs, not yet in a commit, belong to the pipeline's output repo
        rows += [
            (blob, pipeline, "user")
            for blob, pipeline in conn.execute("SELECT blob, pipeline FROM datum_outputs")
        ]
    finally:
        conn.close()
    for blob, repo, kind in rows:
        owners.setdefault(blob, repo if kind == "user" else f"{repo}.{kind}")
    return owners


def disk_breakdown(root: Path) -> dict[str, float]:
    """MB of ``root`` (a pachd-lite storage root) per repo and per kind of non-blob file, largest first."""
    owners = blob_owners(root / "pachd.sqlite")
    sizes: dict[str, int] = {}
    seen: set[tuple[int, int]] = set()
    for path, st in files_under([root]):
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        parts = path.relative_to(root).parts
        if parts[0] == "blobs":
            key = owners.get(path.name, GARBAGE)
        elif parts[0] == "tmp":
            key = STAGING
        elif parts[0].startswith("pachd.sqlite"):
            key = DATABASE
        elif parts[0].startswith("small-blobs.sqlite"):
            key = SMALL_BLOBS
        else:
            key = OTHER
        sizes[key] = sizes.get(key, 0) + st.st_blocks * 512
    return {k: round(v / MB, 1) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])}


def sandbox_area(root: Path) -> Path | None:
    """The folder of this server start's sandboxes, as recorded in the root (None before it starts)."""
    try:
        area = Path((root / POINTER).read_text().strip())
    except OSError:
        return None
    return area if area.is_dir() else None


class DiskSampler:
    """Samples the disk held by a pachd-lite root and its sandboxes every ``interval`` s; keeps the peak."""

    def __init__(self, root: Path, interval: float = 0.5) -> None:
        self.root, self.interval = root, interval
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="disk-sampler", daemon=True)

    def start(self) -> DiskSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> int:
        area = sandbox_area(self.root)
        used = allocated_bytes([self.root, *([area] if area else [])])
        with self._lock:
            self._peak = max(self._peak, used)
        return used

    def take_peak_mb(self) -> float:
        """The peak since the last call, in MB (one more sample first); start over."""
        self.sample()
        with self._lock:
            peak, self._peak = self._peak, 0
        return round(peak / MB, 1)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
