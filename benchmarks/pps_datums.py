"""One job of N datums whose command is ``true`` (parallelism 2) on pachd-lite: datums/s.

Target (issue 4): >= 50 datums/s, i.e. pachd-lite's overhead per datum is small next to
starting the process.

    .venv/bin/python benchmarks/pps_datums.py [--datums 1000] [--parallelism 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pachyderm_sdk.api import pfs, pps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures.pachd, as the other benchmarks do


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datums", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=2)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pps-bench-"))
    from tests.fixtures.pachd import PachdProcess

    server = PachdProcess(work / "root").start()  # waits until the health check says SERVING
    try:
        client = server.client()
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
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
