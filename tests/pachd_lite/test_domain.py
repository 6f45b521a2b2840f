"""Domain functions PPS builds on (no gRPC): tree import/export by hard link, glob rules."""

from __future__ import annotations

import hashlib
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


def _tree(ctx, commit_id: int) -> dict[str, str]:
    with ctx.db.read() as conn:
        return {e.path: e.blob for e in files.load_entries(conn, commit_id)}


@pytest.mark.parametrize("seed", range(4))
def test_layered_trees_match_full_snapshots(tmp_path: Path, monkeypatch, seed: int):
    """Random writes, deletes, clears, squashes and drops on two branches: every commit's tree read
    from delta layers equals the tree a full copy per commit gives (the model)."""
    import random

    from pachd_lite.pfs import commit_sets, layers

    monkeypatch.setattr(layers, "MAX_DELTAS", 3)  # full layers every few commits, too
    rnd = random.Random(seed)
    ctx = open_context(tmp_path / "root")
    repo = RepoRef("default", "r")
    repos.create_repo(ctx, repo)
    model: dict[int, dict[str, bytes]] = {}
    sets: dict[int, str] = {}
    universe = ["/a", "/b", "/d/x", "/d/y", "/d/e/z", "/f"]
    open_ids: dict[str, int] = {}
    for _ in range(160):
        op = rnd.choice(
            ["start", "put", "put", "put", "delete", "finish", "finish", "clear", "squash", "drop"]
        )
        branch = rnd.choice(["master", "dev"])
        if op == "start" and branch not in open_ids:
            info = commits.start_commit(ctx, BranchRef(repo, branch))
            parent = info.parent
            with ctx.db.read() as conn:
                parent_id = conn.execute(
                    "SELECT parent_id FROM commits WHERE id = ?", (info.rowid,)
                ).fetchone()[0]
            model[info.rowid] = dict(model.get(parent_id, {})) if parent is not None else {}
            sets[info.rowid] = info.ref.id
            open_ids[branch] = info.rowid
        elif op in ("put", "delete", "clear") and branch in open_ids:
            cid = open_ids[branch]
            ref = CommitRef(repo, id=sets[cid])
            path = rnd.choice(universe)
            tree = model[cid]
            if op == "put":
                data = rnd.choice([b"1", b"2", b"3"])
                session = files.ModifyFileSession(ctx)
                session.set_commit(ref)
                conflict = any(p.startswith(path + "/") for p in tree) or any(
                    path.startswith(p + "/") for p in tree
                )
                if conflict:
                    with pytest.raises(InvalidArgument):
                        session.add_raw(path, data)
                        session.close()
                    continue
                session.add_raw(path, data)
                session.close()
                tree[path] = tree.get(path, b"") + data  # AddFile appends
            elif op == "delete":
                target = rnd.choice([path, "/d", "/d/e", "/"])
                session = files.ModifyFileSession(ctx)
                session.set_commit(ref)
                session.delete(target)
                session.close()
                for p in list(tree):
                    if target == "/" or p == target or p.startswith(target + "/"):
                        del tree[p]
            else:
                commits.clear_commit(ctx, ref)
                with ctx.db.read() as conn:
                    parent_id = conn.execute("SELECT parent_id FROM commits WHERE id = ?", (cid,)).fetchone()[
                        0
                    ]
                model[cid] = dict(model[parent_id]) if parent_id is not None else {}
        elif op == "finish" and branch in open_ids:
            commits.finish_commit(ctx, CommitRef(repo, id=sets[open_ids.pop(branch)]))
        elif op in ("squash", "drop") and model:
            cid = rnd.choice(list(model))
            with ctx.db.read() as conn:
                row = conn.execute("SELECT * FROM commits WHERE id = ?", (cid,)).fetchone()
                children = conn.execute("SELECT id FROM commits WHERE parent_id = ?", (cid,)).fetchall()
            if row["finished"] is None or cid in open_ids.values():
                continue
            if op == "squash" and children:
                commit_sets.drop_commit_set(ctx, sets[cid], squash=True)
            elif op == "drop" and not children:
                commit_sets.drop_commit_set(ctx, sets[cid])
            else:
                continue
            del model[cid]
        for cid, tree in model.items():
            expected = {p: hashlib.blake2b(b, digest_size=32).hexdigest() for p, b in tree.items()}
            assert _tree(ctx, cid) == expected, (seed, op, cid)
    ctx.db.close()


def test_roots_from_before_delta_layers_open_and_read(tmp_path: Path):
    """A root whose commits table has no layer columns (every commit a full copy) still reads."""
    import sqlite3

    ctx = open_context(tmp_path / "root")
    repo = RepoRef("default", "r")
    repos.create_repo(ctx, repo)
    for i in range(3):
        info = commits.start_commit(ctx, BranchRef(repo, "master"))
        session = files.ModifyFileSession(ctx)
        session.set_commit(info.ref)
        session.add_raw(f"/f{i}", b"x")
        session.close()
        commits.finish_commit(ctx, info.ref)
    ctx.db.close()
    with sqlite3.connect(tmp_path / "root" / "pachd.sqlite") as db:  # make it look like an old root
        for cid, parent in db.execute("SELECT id, parent_id FROM commits ORDER BY id").fetchall():
            if parent is not None:
                db.execute(
                    "INSERT OR IGNORE INTO files(commit_id, path, blob, size, datum) "
                    "SELECT ?, path, blob, size, datum FROM files WHERE commit_id = ?",
                    (cid, parent),
                )
        db.execute("ALTER TABLE commits DROP COLUMN layer_full")
        db.execute("ALTER TABLE commits DROP COLUMN layer_depth")
    ctx = open_context(tmp_path / "root")
    head = CommitRef(repo, branch="master")
    assert [i.path for i in files.walk_file(ctx, head, "/") if not i.is_dir] == ["/f0", "/f1", "/f2"]
    info = commits.start_commit(ctx, BranchRef(repo, "master"))  # a delta on an old full layer
    session = files.ModifyFileSession(ctx)
    session.set_commit(info.ref)
    session.delete("/f1")
    session.close()
    commits.finish_commit(ctx, info.ref)
    assert [i.path for i in files.walk_file(ctx, head, "/") if not i.is_dir] == ["/f0", "/f2"]
    ctx.db.close()
