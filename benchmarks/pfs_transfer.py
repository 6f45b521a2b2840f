"""Upload and download one large file through the pachyderm_sdk client against pachd-lite.

Prints MB/s up and down and the server's peak RSS. Targets (issue 3): >= 200 MB/s both
ways, server RSS < 200 MB.

    .venv/bin/python benchmarks/pfs_transfer.py [--size-mb 470] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures.pachd, as the other benchmarks do

MB = 1024 * 1024


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)


def make_file(path: Path, size: int) -> str:
    digest = hashlib.blake2b(digest_size=32)
    block = os.urandom(8 * MB)
    with open(path, "wb") as fh:
        written = 0
        while written < size:
            chunk = block[: min(len(block), size - written)]
            # vary the content so blocks are not identical
            chunk = written.to_bytes(8, "little") + chunk[8:]
            fh.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def raw_upload(port: int, data: Path, size: int) -> float:
    """Upload through grpc with ModifyFile messages built before the clock starts."""
    import grpc

    client = Client(host="127.0.0.1", port=port)
    repo = pfs.Repo(name="bench-raw", type="user", project=pfs.Project(name="default"))
    client.pfs.create_repo(repo=repo)
    commit = client.pfs.start_commit(branch=pfs.Branch(repo=repo, name="master"))
    chunk = 19 * MB
    with open(data, "rb") as fh:
        first = fh.read(chunk)
    body = bytes(pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/data.bin", raw=first)))
    head = [
        bytes(pfs.ModifyFileRequest(set_commit=commit)),
        bytes(pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/data.bin", raw=b""))),
    ]
    count = max(1, size // chunk)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 20 * MB)])
    call = channel.stream_unary(
        "/pfs_v2.API/ModifyFile", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    start = time.perf_counter()
    call(iter(head + [body] * count))
    client.pfs.finish_commit(commit=commit)
    elapsed = time.perf_counter() - start
    channel.close()
    return elapsed * size / (count * chunk)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=470)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pfs-bench-"))
    data = work / "data.bin"
    size = args.size_mb * MB
    print(f"writing {args.size_mb} MB test file ...", flush=True)
    want = make_file(data, size)

    from tests.fixtures.pachd import PachdProcess

    server = PachdProcess(work / "root").start()  # waits until the health check says SERVING
    try:
        client = server.client()
        sampler = RssSampler(server.pid)
        sampler.start()
        rss_idle = psutil.Process(server.pid).memory_info().rss

        repo = pfs.Repo(name="bench", type="user", project=pfs.Project(name="default"))
        client.pfs.create_repo(repo=repo)
        start = time.perf_counter()
        with client.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as commit:
            with open(data, "rb") as fh:
                commit.put_file_from_file(path="/data.bin", file=fh)
        commit.wait()
        up = time.perf_counter() - start
        peak_up = sampler.peak

        start = time.perf_counter()
        got = hashlib.blake2b(digest_size=32)
        received = 0
        for chunk in client.pfs.get_file(file=pfs.File(commit=commit, path="/data.bin")):
            got.update(chunk.value)
            received += len(chunk.value)
        down = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()

        # The same content again (a daily re-push of unchanged data): stored once, so the server
        # drops its temporary copy instead of keeping it.
        start = time.perf_counter()
        with client.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as again:
            with open(data, "rb") as fh:
                again.put_file_from_file(path="/again.bin", file=fh)
        again.wait()
        up_again = time.perf_counter() - start

        # The same upload with messages serialised once up front: what the server side sustains
        # when the SDK's own (betterproto) serialisation is taken out of the measurement.
        raw_up = raw_upload(server.port, data, size)

        ok = received == size and got.hexdigest() == want
        print(f"size            {size / MB:.0f} MB")
        print(f"upload          {size / MB / up:8.1f} MB/s  ({up:.2f} s, incl. FinishCommit)")
        print(f"download        {size / MB / down:8.1f} MB/s  ({down:.2f} s, hashing included)")
        print(f"upload again    {size / MB / up_again:8.1f} MB/s  (same content: deduplicated)")
        print(f"upload, raw     {size / MB / raw_up:8.1f} MB/s  (pre-serialised ModifyFile messages, no SDK)")
        print(
            f"server RSS      idle {rss_idle / MB:.0f} MB, peak during upload {peak_up / MB:.0f} MB, "
            f"peak overall {sampler.peak / MB:.0f} MB"
        )
        print(f"content check   {'identical' if ok else 'MISMATCH'}")
        load = os.getloadavg()
        print(
            f"load average    {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores (shared machine)"
        )
        return 0 if ok else 1
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
