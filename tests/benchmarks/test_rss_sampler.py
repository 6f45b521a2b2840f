"""The full-size benchmark's RSS sampler puts each pipeline process under its own stage.

pachd-lite forks a job's process and then execs it; until the exec the child shows pachd-lite's
command line. A sampler that remembered that first look would add the job's memory to pachd-lite
for the rest of the run, so this test samples a child before and after its exec.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from benchmarks.full_pipeline import RssSampler

# A stand-in for pachd-lite: forks, prints the child's pid, and the child execs a process whose
# command line names the etl job once the test creates the "go" file.
FORK_THEN_EXEC = """
import os, sys, time
go, job = sys.argv[1], sys.argv[2] + ".etl"  # the job's name is not in this command line
pid = os.fork()
if pid == 0:
    while not os.path.exists(go):
        time.sleep(0.01)
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", job])
print(pid, flush=True)
os.waitpid(pid, 0)
"""


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_forked_job_counts_for_its_stage_once_it_execs(tmp_path: Path) -> None:
    go = tmp_path / "go"
    root = subprocess.Popen(
        [sys.executable, "-c", FORK_THEN_EXEC, str(go), "spark_jobs"], stdout=subprocess.PIPE, text=True
    )
    try:
        child = psutil.Process(int(root.stdout.readline()))
        sampler = RssSampler(roots={"pachd-lite": root.pid})
        sampler._sample()
        before = sampler.reset()
        assert "etl" not in before and before["pachd-lite"] > 0  # not yet the job: pachd-lite's

        go.touch()
        _wait_for(lambda: "spark_jobs.etl" in " ".join(child.cmdline()))
        sampler._sample()
        assert sampler.seen_stages == {"etl"}
        after = sampler.reset()
        root_mb = psutil.Process(root.pid).memory_info().rss / 2**20
        assert after["etl"] > 0
        assert abs(after["pachd-lite"] - root_mb) < 5  # the stand-in alone, without its job
    finally:
        for proc in psutil.Process(root.pid).children(recursive=True):
            proc.kill()
        root.kill()
        root.wait()
