"""A job's own driver JVM options reach the JVM, and the spec's SPARK_DRIVER_JAVA_OPTIONS override them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark

# Runs in a fresh interpreter: the test session's shared JVM is already running.
TIER_OF_SESSION = """
from spark_jobs.spark_session import build_session
spark = build_session("jit-check", master="local[1]", driver_memory="512m", java_options="-XX:TieredStopAtLevel=1")
jvm = spark.sparkContext._jvm
bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
    jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
)
print("TIER", bean.getVMOption("TieredStopAtLevel").getValue())
spark.stop()
"""


@pytest.mark.parametrize(("override", "tier"), [("", "1"), ("-XX:TieredStopAtLevel=4", "4")])
def test_job_java_options_apply_unless_the_spec_overrides_them(override: str, tier: str) -> None:
    env = {**os.environ, "SPARK_DRIVER_JAVA_OPTIONS": override}
    done = subprocess.run(
        [sys.executable, "-c", TIER_OF_SESSION],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"TIER {tier}" in done.stdout.splitlines(), done.stdout[-2000:]
