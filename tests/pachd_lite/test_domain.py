"""Domain functions PPS builds on (no gRPC): tree import/export by hard link, glob rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pachd_lite.errors import FailedPrecondition, InvalidArgument
from pachd_lite.pfs import commits, files, repos
from pachd_lite.pfs.glob import glob_match
from pachd_lite.pfs.model import BranchRef, CommitRef, RepoRef
from pachd_lite.server import open_context


def test_tree_in_and_out_by_hard_links(tmp_path: Path):
    ctx = open_context(tmp_path / "root")
    repo = RepoRef("default", "r")
    repos.create_repo(ctx, repo)
    info = commits.start_commit(ctx, BranchRef(repo, "master"))
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "x.txt").write_bytes(b"x" * 1000)
    (src / "y.txt").write_bytes(b"y")
    assert files.write_tree_to_commit(ctx, info.ref, src) == 2
    commits.finish_commit(ctx, info.ref)
    with pytest.raises(FailedPrecondition):
        files.write_tree_to_commit(ctx, info.ref, src)
    # the source file and the blob are one inode: nothing was copied
    blob = ctx.blobs.path(files.inspect_file(ctx, info.ref, "/d/x.txt").blob)
    assert os.stat(blob).st_ino == os.stat(src / "d" / "x.txt").st_ino
    out = tmp_path / "out"
    assert files.materialise_commit(ctx, CommitRef(repo, branch="master"), out) == 2
    assert (out / "d" / "x.txt").read_bytes() == b"x" * 1000
    assert os.stat(out / "d" / "x.txt").st_ino == os.stat(blob).st_ino
    ctx.db.close()


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/", "/", True),
        ("/*", "/", False),
        ("/*", "/a.csv", True),
        ("/*", "/dir/", True),
        ("/*", "/dir/a.csv", False),
        ("/*/*", "/dir/a.csv", True),
        ("/**", "/dir/sub/a.csv", True),
        ("/**.csv", "/dir/a.csv", True),
        ("/[ab]*", "/b1", True),
        ("/[!ab]*", "/b1", False),
        ("/{x,y}.txt", "/y.txt", True),
        ("/?.txt", "/ab.txt", False),
        ("/(*)-(*).csv", "/2024-01.csv", True),
        ("/[a-c0-9]x", "/7x", True),  # several ranges in one class
        ("/[a-c0-9]x", "/-x", False),
        ("/a[!b]c", "/a/c", False),  # a negated class never matches the separator
        ("/@(x|y).csv", "/y.csv", True),
        ("/!(x)", "/x", False),
        ("/!(x)", "/y", True),
        ("/dir/../*.csv", "/a.csv", True),  # cleaned like pachd's CleanPath
    ],
)
def test_glob_rules(pattern: str, path: str, matches: bool):
    assert bool(glob_match(pattern, path)) is matches


@pytest.mark.parametrize("pattern", ["/[abc", "/{a,b", "/(a|b", "/[z-a]"])
def test_bad_globs_are_invalid_argument(pattern: str):
    with pytest.raises(InvalidArgument, match="glob"):
        glob_match(pattern, "/a")
