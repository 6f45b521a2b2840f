"""One job of N datums whose command is ``true`` (parallelism 2) on pachd-lite: datums/s.

Target (issue 4): >= 50 datums/s, i.e. pachd-lite's overhead per datum is small next to
starting the process.

    .venv/bin/python benchmarks/pps_datums.py [--datums 1000] [--parallelism 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs, pps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datums", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=2)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pps-bench-"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pachd_lite.cli", "serve", "--root", str(work / "root"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = Client(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.get_version()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.pfs.create_repo(repo=pfs.Repo.from_uri("numbers"))
        src = work / "src"
        src.mkdir()
        for i in range(args.datums):
            (src / f"{i:05d}").write_text(str(i))
        print(f"uploading {args.datums} files ...", flush=True)
        with client.pfs.commit(branch=pfs.Branch.from_uri("numbers@master")) as commit:
            commit.put_files(source=src, path="/")
        spec = {
            "pipeline": {"name": "noop"},
            "input": {"pfs": {"repo": "numbers", "glob": "/*"}},
            "transform": {"cmd": ["true"]},
            "parallelismSpec": {"constant": args.parallelism},
        }
        start = time.perf_counter()
        client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
        job_id = client.pps.inspect_pipeline(pipeline=pps.Pipeline(name="noop")).spec_commit.id
        info = client.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name="noop"), id=job_id), wait=True)
        wall = time.perf_counter() - start
        run = (info.finished - info.started).total_seconds()
        print(
            f"job state       {pps.JobState(info.state).name} ({info.data_processed}/{info.data_total} datums processed)"
        )
        print(f"datums/s        {info.data_total / run:8.1f}  (RUNNING to done: {run:.2f} s)")
        print(f"wall datums/s   {info.data_total / wall:8.1f}  (create pipeline to job done: {wall:.2f} s)")
        return 0 if info.state == pps.JobState.JOB_SUCCESS else 1
    finally:
        server.terminate()
        server.wait(15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
