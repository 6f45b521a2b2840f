"""Metadata size after many small commits: each commit rewrites one file of a repo holding
``--files`` files (a sensor landing a small batch, say). Prints the SQLite size, the blob bytes
and the time per commit; issue 18 measured 776 MB of SQLite for 221 MB of blobs after 7,350
commits when every commit stored a full copy of the file table.

Runs the PFS domain in-process (no gRPC: the figure is about storage, not transport):

    .venv/bin/python benchmarks/pfs_commit_storage.py [--commits 10000] [--files 700] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pachd_lite.pfs import files, repos  # noqa: E402
from pachd_lite.pfs.model import CommitRef, RepoRef  # noqa: E402
from pachd_lite.server import open_context  # noqa: E402

MB = 1e6


def one_off_write(ctx, repo: RepoRef, path: str, data: bytes) -> None:
    """What put_file to repo@master does: its own commit, finished when the write ends."""
    session = files.ModifyFileSession(ctx)
    session.set_commit(CommitRef(repo, branch="master"))
    session.add_raw(path, data)
    session.close()


def db_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("pachd.sqlite*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=700, help="files in the repo (each commit rewrites one)")
    parser.add_argument("--keep", action="store_true", help="keep the storage root")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pfs-commit-storage-"))
    ctx = open_context(root)
    repo = RepoRef("default", "sensor")
    repos.create_repo(ctx, repo)
    session = files.ModifyFileSession(ctx)  # the starting content: one commit with every file
    session.set_commit(CommitRef(repo, branch="master"))
    for i in range(args.files):
        session.add_raw(f"/batch/{i:05d}.csv", f"initial {i}\n".encode())
    session.close()
    start = time.monotonic()
    for n in range(args.commits):
        one_off_write(ctx, repo, f"/batch/{n % args.files:05d}.csv", f"commit {n}\n".encode() * 4)
        if (n + 1) % 1000 == 0:
            print(f"{n + 1} commits, db {db_bytes(root) / MB:.1f} MB", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - start
    with ctx.db.read() as conn:
        rows = conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    blobs = sum(p.stat().st_size for p in (root / "blobs").rglob("*") if p.is_file())
    result = {
        "commits": args.commits,
        "files": args.files,
        "db_mb": round(db_bytes(root) / MB, 1),
        "file_rows": rows,
        "blob_mb": round(blobs / MB, 2),
        "ms_per_commit": round(1000 * elapsed / args.commits, 2),
    }
    ctx.db.close()
    print(json.dumps(result))
    if args.keep:
        print(f"root kept at {root}", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
