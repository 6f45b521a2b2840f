"""The file API of PFS, what the gRPC adapters and PPS call; each concern lives in its own module:

- ``snapshots``: a commit's tree in memory (``Snapshot``: FileInfo of any file or directory) and
  globbing it; ``snapshot``/``snapshot_of_row`` build one, ``load_entries`` reads the raw entries.
- ``file_reads``: inspect/list/walk/glob, the file GetFile names, GetFileTAR's entries, diff,
  FindCommits.
- ``modify_file``: the ModifyFile session (add, add from a URL, copy, delete; one-off commits),
  ``put_file``/``delete_path`` on an open commit.
- ``host_trees``: commits and folders on the host, for pipelines (materialise inputs, store outputs).
"""

from __future__ import annotations

from pachd_lite.pfs.file_reads import (
    diff_file,
    file_for_read,
    find_commits,
    glob_files,
    inspect_file,
    list_file,
    tar_infos,
    walk_file,
)
from pachd_lite.pfs.host_trees import (
    materialise,
    materialise_commit,
    replace_commit_files,
    write_tree_to_commit,
)
from pachd_lite.pfs.layers import Entry
from pachd_lite.pfs.modify_file import ModifyFileSession
from pachd_lite.pfs.snapshots import glob_snapshot, load_entries, snapshot, snapshot_of_row

__all__ = [
    "Entry",
    "ModifyFileSession",
    "diff_file",
    "file_for_read",
    "find_commits",
    "glob_files",
    "glob_snapshot",
    "inspect_file",
    "list_file",
    "load_entries",
    "materialise",
    "materialise_commit",
    "replace_commit_files",
    "snapshot",
    "snapshot_of_row",
    "tar_infos",
    "walk_file",
    "write_tree_to_commit",
]
