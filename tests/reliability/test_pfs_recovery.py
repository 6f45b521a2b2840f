"""pachd-lite after crashes and with storage trouble (issue 18): a one-off write cut by kill -9,
blob space given back while running, an unreadable storage root."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import grpc
import pytest
from pachyderm_sdk.api import pfs

from tests.fixtures.pachd import ROOT, free_port
from tests.pachd_lite.sdk_helpers import PY, create_pipeline, create_repo, put, read
from tests.pachd_lite.test_crash import KillingReader


def test_one_off_write_cut_by_kill_is_dropped_at_start(pachd_factory):
    server = pachd_factory()
    client = server.client()
    repo = create_repo(client, "oneoff")
    put(client, repo, {"/before": b"before"})
    head = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo}@master"))
    with pytest.raises((grpc.RpcError, ConnectionError)):
        client.pfs.put_file_from_file(  # no open commit: a one-off write
            commit=pfs.Commit.from_uri(f"{repo}@master"),
            path="/partial.bin",
            file=KillingReader(server, total_chunks=6, kill_after=2),
        )
    server.start()
    client = server.client()
    now = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo}@master"))
    assert now.commit.id == head.commit.id and now.finished  # the half-written commit is gone
    # one-off writes make finished commits again, and explicit commits can start
    client.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri(f"{repo}@master"), path="/after", data=b"after")
    after = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo}@master"))
    assert after.finished and after.commit.id != head.commit.id
    assert read(client, f"{repo}@master:/after") == b"after"
    commit = client.pfs.start_commit(branch=pfs.Branch.from_uri(f"{repo}@master"))
    client.pfs.finish_commit(commit=commit)


def _blob_bytes(root) -> int:
    return sum(f.stat().st_size for f in (root / "blobs").rglob("*") if f.is_file())


def test_deleting_a_repo_frees_its_blobs_while_running(pachd_factory):
    server = pachd_factory()
    client = server.client()
    keep, drop = create_repo(client, "keep"), create_repo(client, "drop")
    shared = os.urandom(100_000)
    put(client, keep, {"/shared": shared})
    put(client, drop, {"/big": os.urandom(3_000_000), "/shared": shared})
    assert _blob_bytes(server.root) > 3_000_000
    client.pfs.delete_repo(repo=pfs.Repo.from_uri(drop))
    deadline = time.monotonic() + 10
    while _blob_bytes(server.root) > 1_000_000 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _blob_bytes(server.root) < 1_000_000, "the deleted repo's blobs are still on disk"
    assert read(client, f"{keep}@master:/shared") == shared  # still referenced: kept


def _serve_fails(root) -> str:
    """Start ``pachd-lite serve`` on ``root``; it must exit at once with one line on stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "pachd_lite.cli", "serve", "--root", str(root), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=str(ROOT),
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize("damage", ["unreadable", "database-is-a-folder", "not-a-database", "root-is-a-file"])
def test_unusable_root_is_one_clear_line(tmp_path, damage):
    root = tmp_path / "root"
    root.mkdir()
    if damage == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads any folder; the other kinds of damage cover the root user")
        root.chmod(0)
    elif damage == "database-is-a-folder":
        (root / "pachd.sqlite").mkdir()
    elif damage == "not-a-database":
        (root / "pachd.sqlite").write_bytes(b"this is no SQLite file " * 100)
    else:
        root.rmdir()
        root.write_text("a file, not a folder")
    try:
        line = _serve_fails(root)
    finally:
        if root.is_dir():
            root.chmod(0o700)
    assert line.startswith("pachd-lite: ") and str(root) in line, line


def test_collection_never_takes_a_blob_from_a_concurrent_write(pachd_factory):
    """Deletes (each starting a collection) race uploads of the same bytes into another repo and a
    job whose outputs sit in the blob store for a moment before the job records them."""
    server = pachd_factory()
    client = server.client()
    keep, source = create_repo(client, "keep"), create_repo(client, "src")
    put(client, source, {f"/in{i}": os.urandom(1000) for i in range(30)})
    shared = [os.urandom(50_000) for _ in range(5)]
    failures: list[BaseException] = []

    def churn() -> None:
        try:
            c = server.client()
            for _ in range(20):
                doomed = create_repo(c, "doomed")
                put(c, doomed, {f"/s{i}": data for i, data in enumerate(shared)})
                c.pfs.delete_repo(repo=pfs.Repo.from_uri(doomed))
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=churn)
    thread.start()
    copy = f"import os, glob; [open('/pfs/out/' + os.path.basename(f), 'wb').write(os.urandom(2000)) for f in glob.glob('/pfs/{source}/*')]"
    create_pipeline(client, f"{source}-out", {"pfs": {"repo": source, "glob": "/*"}}, [PY, "-c", copy])
    n = 0
    while thread.is_alive() or n < 10:
        client.pfs.put_file_from_bytes(
            commit=pfs.Commit.from_uri(f"{keep}@master"), path=f"/k{n}", data=shared[n % len(shared)]
        )
        n += 1
    thread.join()
    assert not failures
    info = client.pfs.inspect_commit(
        commit=pfs.Commit.from_uri(f"{source}-out@master"), wait=pfs.CommitState.FINISHED
    )
    assert not info.error
    time.sleep(1)  # let the last collection finish
    for i in range(n):
        assert read(client, f"{keep}@master:/k{i}") == shared[i % len(shared)]
    for i in range(30):
        assert len(read(client, f"{source}-out@master:/in{i}")) == 2000
