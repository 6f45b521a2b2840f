"""Where user code runs: one folder of sandboxes per server start, outside the storage root.

The folder is made fresh at every start (``pachd-lite-sandboxes-*``, mode 0700, or 0711 when
user code runs as another user, who owns only its own sandboxes) in ``$PACHD_LITE_SANDBOX_DIR``,
else the system temp folder when it is on the root's filesystem (inputs are hard links, which
need one filesystem), else next to the root. Its path is kept in ``<root>/sandboxes.path`` so
that the next start can stop user code a killed server left running there and remove it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from pachd_lite.pps.orphans import kill_orphaned_user_code

__all__ = ["POINTER", "open_area"]

log = logging.getLogger(__name__)

POINTER = "sandboxes.path"
SANDBOX_DIR_ENV = "PACHD_LITE_SANDBOX_DIR"
PREFIX = "pachd-lite-sandboxes-"
LEGACY = "sandboxes"  # where sandboxes lived inside the root before


def _parent_for(root: Path) -> Path:
    chosen = os.environ.get(SANDBOX_DIR_ENV)
    if chosen:
        return Path(chosen)
    temp = Path(tempfile.gettempdir())
    try:
        if temp.stat().st_dev == root.stat().st_dev:
            return temp
    except OSError:
        pass
    return root.resolve().parent


def _clean(old: Path) -> None:
    if old.is_dir():
        kill_orphaned_user_code(old)
        shutil.rmtree(old, ignore_errors=True)


def open_area(root: Path, shared_with_other_user: bool = False) -> Path:
    """Clean up the previous start's sandboxes; return a new, empty folder for this start's."""
    pointer = root / POINTER
    try:
        previous = pointer.read_text().strip()
    except OSError:
        previous = ""
    if previous and Path(previous).name.startswith(PREFIX):  # never anything else the file may name
        _clean(Path(previous))
    _clean(root / LEGACY)
    parent = _parent_for(root)
    parent.mkdir(parents=True, exist_ok=True)
    area = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    os.chmod(area, 0o711 if shared_with_other_user else 0o700)
    tmp = pointer.with_name(POINTER + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(str(area) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, pointer)
    log.info("user code runs in sandboxes under %s", area)
    return area
