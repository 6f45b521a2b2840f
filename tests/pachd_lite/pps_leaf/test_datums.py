"""Datum creation, identity and hashing (pachd_lite.pps.datums)."""

from __future__ import annotations

import hashlib
import struct

import pytest
from pachyderm_sdk.api import pps

from pachd_lite.pps.datums import (
    Datum,
    Match,
    PfsInputRef,
    compile_glob,
    compute_datums,
    datum_env,
    datum_id,
    glob_replace,
)


def _h(content: str) -> str:
    return hashlib.blake2b(content.encode(), digest_size=32).hexdigest()


class FakePfs:
    """In-memory repos: {repo: {path: content}}; matches with the module's own glob compiler,
    the way the core's GlobFile does (paths with leading "/", dirs with trailing "/")."""

    def __init__(self, repos: dict[str, dict[str, str]]) -> None:
        self.repos = repos
        self.calls: list[tuple[PfsInputRef, str]] = []

    def __call__(self, ref: PfsInputRef, glob: str) -> list[Match]:
        self.calls.append((ref, glob))
        files = self.repos[ref.repo]
        if glob == "/":
            return [Match(path="/", hash=_h("".join(sorted(files.values()))), is_dir=True)]
        rx = compile_glob(glob)
        entries: dict[str, Match] = {}
        for path, content in files.items():
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts) + 1):
                p = "/" + "/".join(parts[:depth])
                is_dir = depth < len(parts)
                if rx.match(p):
                    key = p + ("/" if is_dir else "")
                    if is_dir:
                        sub = "".join(c for q, c in sorted(files.items()) if q.startswith(p + "/"))
                        entries[key] = Match(path=key, hash=_h(sub), is_dir=True)
                    else:
                        entries[key] = Match(path=key, hash=_h(content), size=len(content))
        return [entries[k] for k in sorted(entries)]


def pfs(repo: str, glob: str, **kw) -> pps.Input:
    return pps.Input(pfs=pps.PfsInput(repo=repo, glob=glob, **kw))


def paths(d: Datum) -> list[tuple[str, str]]:
    return [(i.name, i.path) for i in d.inputs]


def test_datum_id_byte_layout_matches_pachd_common_datum_id():
    d = compute_datums(pfs("raw", "/*"), FakePfs({"raw": {"/a.csv": "x"}}), salt="s")[0]
    expected = hashlib.blake2b(digest_size=32)
    for part in ("raw", "raw", "master", "/a.csv"):  # name, repo, branch, path
        expected.update(part.encode() + struct.pack(">q", len(part)))
    assert d.id == expected.hexdigest() == datum_id(d.inputs)
    h = hashlib.blake2b(digest_size=32)
    h.update(d.id.encode() + bytes.fromhex(_h("x")) + b"s")
    assert d.hash == h.hexdigest()


def test_one_datum_per_top_level_entry_and_defaults():
    fake = FakePfs({"raw": {"/a.csv": "1", "/b.csv": "2", "/dir/c.csv": "3"}})
    ds = compute_datums(pfs("raw", "/*"), fake, salt="s")
    assert [paths(d) for d in ds] == [[("raw", "/a.csv")], [("raw", "/b.csv")], [("raw", "/dir/")]]
    ref, glob = fake.calls[0]
    assert (ref.name, ref.project, ref.branch, ref.repo_type, glob) == (
        "raw",
        "default",
        "master",
        "user",
        "/*",
    )
    assert ds[2].inputs[0].is_dir


def test_root_and_recursive_globs():
    fake = FakePfs({"raw": {"/a/x": "1", "/a/y": "2"}})
    assert [paths(d) for d in compute_datums(pfs("raw", "/"), fake, "s")] == [[("raw", "/")]]
    rec = compute_datums(pfs("raw", "/**"), fake, "s")
    assert [d.inputs[0].path for d in rec] == ["/a/", "/a/x", "/a/y"]
    assert [d.inputs[0].path for d in compute_datums(pfs("raw", "/*/*"), fake, "s")] == ["/a/x", "/a/y"]


def test_ids_are_content_independent_and_hashes_track_content_and_salt():
    before = compute_datums(pfs("raw", "/*"), FakePfs({"raw": {"/a": "1", "/b": "2"}}), "s1")
    after = compute_datums(pfs("raw", "/*"), FakePfs({"raw": {"/a": "1", "/b": "CHANGED"}}), "s1")
    resalted = compute_datums(pfs("raw", "/*"), FakePfs({"raw": {"/a": "1", "/b": "2"}}), "s2")
    again = compute_datums(pfs("raw", "/*"), FakePfs({"raw": {"/a": "1", "/b": "2"}}), "s1")
    assert [d.id for d in before] == [d.id for d in after] == [d.id for d in resalted]
    assert before[0].hash == after[0].hash and before[1].hash != after[1].hash
    assert all(x.hash != y.hash for x, y in zip(before, resalted, strict=True))
    assert before == again


def test_id_depends_on_name_branch_and_path():
    fake = FakePfs({"raw": {"/a": "1"}})
    base = compute_datums(pfs("raw", "/*"), fake, "s")[0].id
    assert compute_datums(pfs("raw", "/*", name="other"), fake, "s")[0].id != base
    assert compute_datums(pfs("raw", "/*", branch="dev"), fake, "s")[0].id != base


def test_empty_match_gives_no_datums_and_empty_cross_side_gives_none():
    fake = FakePfs({"raw": {}, "ref": {"/m": "1"}})
    assert compute_datums(pfs("raw", "/*"), fake, "s") == []
    assert compute_datums(pps.Input(cross=[pfs("raw", "/*"), pfs("ref", "/*")]), fake, "s") == []


def test_cross_is_cartesian_product_in_input_order():
    fake = FakePfs({"a": {"/1": "x", "/2": "y"}, "b": {"/p": "z", "/q": "w", "/r": "v"}})
    ds = compute_datums(pps.Input(cross=[pfs("a", "/*"), pfs("b", "/*")]), fake, "s")
    assert len(ds) == 6
    assert paths(ds[0]) == [("a", "/1"), ("b", "/p")]
    assert paths(ds[5]) == [("a", "/2"), ("b", "/r")]
    assert len({d.id for d in ds}) == 6


def test_union_concatenates_and_may_reuse_names():
    fake = FakePfs({"a": {"/1": "x"}, "b": {"/p": "z", "/q": "w"}})
    u = pps.Input(union=[pfs("a", "/*", name="in"), pfs("b", "/*", name="in")])
    ds = compute_datums(u, fake, "s")
    assert [paths(d) for d in ds] == [[("in", "/1")], [("in", "/p")], [("in", "/q")]]


def test_join_on_capture_group_inner_and_outer():
    fake = FakePfs(
        {
            "left": {"/1.csv": "a", "/2.csv": "b", "/3.csv": "c"},
            "right": {"/1.json": "d", "/2.json": "e", "/4.json": "f"},
        }
    )
    inner = pps.Input(join=[pfs("left", "/(*).csv", join_on="$1"), pfs("right", "/(*).json", join_on="$1")])
    ds = compute_datums(inner, fake, "s")
    assert sorted(paths(d) for d in ds) == [
        [("left", "/1.csv"), ("right", "/1.json")],
        [("left", "/2.csv"), ("right", "/2.json")],
    ]
    assert {d.inputs[0].join_on for d in ds} == {"1", "2"}
    outer = pps.Input(
        join=[
            pfs("left", "/(*).csv", join_on="$1", outer_join=True),
            pfs("right", "/(*).json", join_on="$1"),
        ]
    )
    ds = compute_datums(outer, fake, "s")
    assert sorted(paths(d) for d in ds) == [
        [("left", "/1.csv"), ("right", "/1.json")],
        [("left", "/2.csv"), ("right", "/2.json")],
        [("left", "/3.csv")],
    ]


def test_group_by_merges_all_matching_files_into_one_datum():
    fake = FakePfs({"sales": {"/2024-01-a": "1", "/2024-01-b": "2", "/2024-02-a": "3"}})
    g = pps.Input(group=[pfs("sales", "/(*)-(*)-*", group_by="$1-$2")])
    ds = compute_datums(g, fake, "s")
    assert sorted(sorted(p for _, p in paths(d)) for d in ds) == [
        ["/2024-01-a", "/2024-01-b"],
        ["/2024-02-a"],
    ]


def test_order_is_deterministic_regardless_of_listing_order():
    files = {f"/{i:02d}": str(i) for i in range(20)}
    a = compute_datums(pps.Input(group=[pfs("r", "/(*)", group_by="$1")]), FakePfs({"r": files}), "s")
    b = compute_datums(
        pps.Input(group=[pfs("r", "/(*)", group_by="$1")]),
        FakePfs({"r": dict(reversed(list(files.items())))}),
        "s",
    )
    assert [d.id for d in a] == [d.id for d in b]


def test_reference_inputs_do_not_change_the_hash():
    one = compute_datums(pfs("raw", "/*", reference=True), FakePfs({"raw": {"/a": "1"}}), "s")
    two = compute_datums(pfs("raw", "/*", reference=True), FakePfs({"raw": {"/a": "2"}}), "s")
    assert one[0].hash == two[0].hash


def test_commit_of_fills_commits_and_env():
    fake = FakePfs({"raw": {"/sub/a.csv": "1"}})
    ds = compute_datums(pfs("raw", "/*", join_on="$1"), fake, "s", commit_of=lambda ref: "c" * 32)
    env = datum_env(ds[0])
    assert env["raw"] == "/pfs/raw/sub"
    assert env["raw_COMMIT"] == "c" * 32
    assert env["PACH_DATUM_ID"] == ds[0].id
    assert fake.calls[0][0].commit == "c" * 32  # list_matches reads the job's commit
    assert ds[0].inputs[0].commit == "c" * 32


def test_glob_dialect():
    assert compile_glob("/*").match("/a") and not compile_glob("/*").match("/a/b")
    assert compile_glob("/**").match("/a/b/c")
    assert compile_glob("/{a,b}.csv").match("/b.csv")
    assert compile_glob("/[!a]x").match("/bx") and not compile_glob("/[!a]x").match("/ax")
    assert glob_replace("/(*)-(*).csv", "/x-y.csv", "$2/${1}") == "y/x"
    assert glob_replace("/+(a|b)/(*).go", "/ab/x.go/", "$1$2") == "abx"
    with pytest.raises(ValueError):
        compile_glob("/(a|b")
