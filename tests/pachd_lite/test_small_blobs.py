"""Small blobs (a job's datum meta) live as rows of one SQLite file, read like any other blob."""

from __future__ import annotations

import time
from pathlib import Path

from pachd_lite.storage.blobs import BlobStore, new_hasher_of
from pachd_lite.storage.small_blobs import SMALL_BLOB_MAX


def _blob_files(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").glob("*/*")}


def test_small_blobs_are_rows_read_like_files_and_kept_across_a_restart(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    before = _blob_files(tmp_path)
    metas = [f'{{"datum": {i}}}'.encode() for i in range(50)]
    digests = store.put_small_many(metas + [metas[0]])  # the same content twice: one blob

    assert digests[:50] == [new_hasher_of(m) for m in metas] and digests[50] == digests[0]
    assert _blob_files(tmp_path) == before  # no file per datum
    assert all(store.exists(d) for d in digests)
    assert b"".join(store.read_chunks(digests[7])) == metas[7]
    assert b"".join(store.read_chunks(digests[12], offset=3, chunk_size=2)) == metas[12][3:]
    store.materialise(digests[3], tmp_path / "sandbox" / "meta")
    assert (tmp_path / "sandbox" / "meta").read_bytes() == metas[3]
    store.close()

    reopened = BlobStore(tmp_path)  # written with one synced transaction: still there
    assert b"".join(reopened.read_chunks(digests[49])) == metas[49]
    reopened.close()


def test_content_over_the_limit_is_a_file(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    big = b"x" * (SMALL_BLOB_MAX + 1)
    (digest,) = store.put_small_many([big])
    assert digest in _blob_files(tmp_path) and store.path(digest).read_bytes() == big
    store.close()


def test_collection_removes_unreferenced_small_blobs_but_not_pinned_or_referenced_ones(
    tmp_path: Path,
) -> None:
    store = BlobStore(tmp_path)
    keep, drop, pinned = store.put_small_many([b"referenced", b"dropped", b"still being written"])
    for digest in (keep, drop):
        store.release(digest)  # the metadata store refers to them now (or gave them up)

    # references read after the releases, so neither release is newer than the set
    removed, freed, kept = store.collect_garbage({keep}, read_at=time.monotonic())

    assert (removed, freed, kept) == (1, len(b"dropped"), 1)
    assert store.exists(keep) and store.exists(pinned) and not store.exists(drop)
    store.close()
    assert not BlobStore(tmp_path).exists(drop)  # gone on disk, not only from memory


def test_content_given_twice_in_a_batch_is_pinned_for_each(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    first, again = store.put_small_many([b"skipped twice", b"skipped twice"])
    assert first == again
    store.release(first)  # one of its two references is recorded; the other writer still holds it

    assert store.collect_garbage(set(), read_at=time.monotonic()) == (0, 0, 1)
    store.release(again)
    assert store.collect_garbage(set(), read_at=time.monotonic())[0] == 1
    store.close()
