"""benchmarks/pachd_disk.py on a real pachd-lite root: bytes per repo, staging, garbage, hard links once."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.pachd_disk import GARBAGE, STAGING, DiskSampler, allocated_bytes, disk_breakdown
from tests.pachd_lite.sdk_helpers import create_repo, put

MB = 2**20


def test_breakdown_names_each_repo_staging_and_garbage(pachd_factory) -> None:
    server = pachd_factory()
    client = server.client()
    big, small = create_repo(client, "big"), create_repo(client, "small")
    put(client, big, {"/a.bin": os.urandom(3 * MB)})
    put(client, small, {"/b.bin": os.urandom(MB)})
    # a file two repos store is one blob, counted for the repo that stored it first
    shared = os.urandom(MB // 2)
    put(client, big, {"/shared.bin": shared})
    put(client, small, {"/shared.bin": shared})
    stray = server.root / "blobs" / "ff" / ("f" * 64)
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(os.urandom(2 * MB))
    (server.root / "tmp" / "upload-x").write_bytes(os.urandom(MB))

    parts = disk_breakdown(server.root)

    assert 3.5 <= parts[big] < 3.6, parts
    assert 1.0 <= parts[small] < 1.1, parts
    assert 2.0 <= parts[GARBAGE] < 2.1 and 1.0 <= parts[STAGING] < 1.1, parts
    assert "metadata database" in parts
    whole = allocated_bytes([server.root]) / MB
    assert abs(sum(parts.values()) - whole) < 0.5, (parts, whole)


def test_a_hard_linked_file_counts_once_and_the_sampler_keeps_the_peak(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "blobs").mkdir(parents=True)
    outside.mkdir()
    blob = root / "blobs" / "one"
    blob.write_bytes(os.urandom(MB))
    os.link(blob, outside / "input")
    assert allocated_bytes([root, outside]) == allocated_bytes([root])

    area = tmp_path / "sandboxes"
    area.mkdir()
    (root / "sandboxes.path").write_text(f"{area}\n")
    sampler = DiskSampler(root, interval=3600)  # sampled by hand here
    (area / "output").write_bytes(os.urandom(2 * MB))
    sampler.sample()
    (area / "output").unlink()
    assert 3.0 <= sampler.take_peak_mb() < 3.1  # the job output counted while it existed
    assert 1.0 <= sampler.take_peak_mb() < 1.1  # and the peak starts over
