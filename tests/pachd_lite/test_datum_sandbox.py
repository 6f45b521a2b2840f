"""A worker's sandbox is emptied and reused between datums, and made anew when user code changed it."""

from __future__ import annotations

import os
from pathlib import Path

from pachd_lite.pps.datum_sandbox import DatumSandbox


def _prepare(path: Path) -> None:
    (path / "pfs" / "out").mkdir(parents=True)


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_leftovers_of_a_datum_are_gone_and_the_folders_are_kept(tmp_path: Path) -> None:
    box = DatumSandbox(tmp_path / "w0", _prepare)
    first = box.fresh()
    inode = os.stat(first / "pfs" / "out").st_ino
    (first / "scratch").mkdir()
    (first / "scratch" / "deep.txt").write_text("x")
    (first / "pfs" / "numbers").mkdir()
    (first / "pfs" / "numbers" / "00001").write_text("1")
    (first / "pfs" / "out" / "result").write_text("r")
    (first / "link").symlink_to(first / "pfs")
    box.done()
    assert _tree(first) == ["pfs", "pfs/out"]
    again = box.fresh()
    assert _tree(again) == ["pfs", "pfs/out"]
    assert os.stat(again / "pfs" / "out").st_ino == inode  # reused, not made again


def test_a_folder_user_code_changed_is_made_anew(tmp_path: Path) -> None:
    box = DatumSandbox(tmp_path / "w0", _prepare)
    path = box.fresh()
    os.chmod(path / "pfs" / "out", 0o700)
    box.done()
    again = box.fresh()
    assert _tree(again) == ["pfs", "pfs/out"]
    assert os.stat(again / "pfs" / "out").st_mode & 0o777 != 0o700


def test_out_replaced_by_a_symlink_is_made_anew(tmp_path: Path) -> None:
    box = DatumSandbox(tmp_path / "w0", _prepare)
    path = box.fresh()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("k")
    os.rmdir(path / "pfs" / "out")
    (path / "pfs" / "out").symlink_to(elsewhere)
    box.done()
    again = box.fresh()
    assert (again / "pfs" / "out").is_dir() and not (again / "pfs" / "out").is_symlink()
    assert _tree(again) == ["pfs", "pfs/out"]
    assert (elsewhere / "keep").read_text() == "k"  # nothing outside the sandbox is touched


def test_an_input_folder_is_kept_only_for_a_datum_with_that_input(tmp_path: Path) -> None:
    box = DatumSandbox(tmp_path / "w0", _prepare)
    path = box.fresh({"a"})
    (path / "pfs" / "a").mkdir()
    (path / "pfs" / "a" / "f").write_text("1")
    box.placed({"a"})
    inode = os.stat(path / "pfs" / "a").st_ino
    box.done()
    assert _tree(box.fresh({"a"})) == ["pfs", "pfs/a", "pfs/out"]  # emptied, placement fills it
    assert os.stat(path / "pfs" / "a").st_ino == inode
    box.placed({"a"})
    box.done()
    assert _tree(box.fresh({"b"})) == ["pfs", "pfs/out"]  # another datum never sees /pfs/a
