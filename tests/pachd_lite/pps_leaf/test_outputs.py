"""Collecting /pfs/out (pachd_lite.pps.outputs): copies only, names checked, nothing read for another user."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from pachd_lite.pps.outputs import OutputError, collect_outputs
from pachd_lite.storage.blobs import BlobStore


@pytest.fixture
def ctx(tmp_path: Path):
    return SimpleNamespace(blobs=BlobStore(tmp_path / "store"))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    path = tmp_path / "sandbox" / "pfs" / "out"
    path.mkdir(parents=True)
    return path


def test_outputs_are_copies_a_writer_cannot_change(ctx, out):
    (out / "dir").mkdir()
    (out / "dir" / "a.txt").write_bytes(b"first")
    (out / "link").symlink_to(out / "dir" / "a.txt")
    entries = collect_outputs(ctx, out)
    assert [(e.path, e.size) for e in entries] == [("/dir/a.txt", 5), ("/link", 5)]
    blob = ctx.blobs.path(entries[0].blob)
    assert os.stat(blob).st_ino != os.stat(out / "dir" / "a.txt").st_ino
    with open(out / "dir" / "a.txt", "r+b") as fh:  # a process left behind writes in place
        fh.write(b"CHANG")
    assert blob.read_bytes() == b"first"


@pytest.mark.parametrize(
    ("name", "words"),
    [(b"caf\xe9", ["/pfs/out/caf\\xe9", "not UTF-8"]), (b"two\nlines", ["/pfs/out/two\\nlines", "control"])],
)
def test_names_pfs_cannot_hold_fail_naming_the_file(ctx, out, name, words):
    (out / "fine").write_bytes(b"x")
    with open(os.path.join(os.fsencode(out), name), "wb") as fh:
        fh.write(b"y")
    with pytest.raises(OutputError) as err:
        collect_outputs(ctx, out)
    for word in words:
        assert word in str(err.value)


def test_another_users_outputs_cannot_make_pachd_lite_read_for_it(ctx, out, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"root only")
    os.chmod(secret, 0o600)
    sandbox = out.parent.parent
    (out / "leak").symlink_to(secret)
    with pytest.raises(OutputError, match="/pfs/out/leak is a symlink out of the sandbox"):
        collect_outputs(ctx, out, confine_to=sandbox, owner=65534)
    (out / "leak").unlink()
    os.link(secret, out / "leak")  # as if the kernel allowed the hard link
    with pytest.raises(OutputError, match="/pfs/out/leak is a file user code may not read"):
        collect_outputs(ctx, out, confine_to=sandbox, owner=65534)
    os.chmod(secret, 0o644)  # world-readable: the user could read it anyway
    assert [e.path for e in collect_outputs(ctx, out, confine_to=sandbox, owner=65534)] == ["/leak"]
