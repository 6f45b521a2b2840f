"""spark_jobs.pandas_guard: the pyarrow-only jobs run without importing pandas, with the same output.

Each check runs in a fresh interpreter, because blocking pandas holds for the whole process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spark_jobs.etl import LazySpark, run_directory

ROOT = Path(__file__).resolve().parents[2]

# Runs a module as __main__ and reports at exit whether pandas was loaded.
RUN_AND_REPORT = """
import atexit, runpy, sys
atexit.register(lambda: print("pandas loaded:", "pandas" in sys.modules))
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_module(sys.argv[0], run_name="__main__")
"""


def _python(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_blocked_pandas_leaves_pyarrow_working() -> None:
    code = """
import sys
from spark_jobs.pandas_guard import block_pandas_import
assert block_pandas_import() is True
assert block_pandas_import() is False  # only once
import numpy as np, pyarrow as pa, pyarrow.compute as pc
assert pc.equal(pa.array([1, 0]), 0).to_pylist() == [False, True]
assert pa.array(np.arange(3)).to_pylist() == [0, 1, 2]
try:
    import pandas
except ModuleNotFoundError as err:
    print("blocked:", err)
print("pandas loaded:", "pandas" in sys.modules)
"""
    done = _python(["-c", code])
    assert done.returncode == 0, done.stderr
    assert "blocked: No module named 'pandas' (pandas is blocked in this job)" in done.stdout
    assert "pandas loaded: False" in done.stdout


def test_an_already_imported_pandas_is_left_alone() -> None:
    done = _python(
        [
            "-c",
            "import pandas\nfrom spark_jobs.pandas_guard import block_pandas_import\n"
            "print(block_pandas_import())\nimport pandas.api",
        ]
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_split_and_arrow_etl_jobs_never_load_pandas(
    raw_dir: Path, split_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    split_out, etl_out = tmp_path / "split", tmp_path / "etl"
    split = _python(
        ["-c", RUN_AND_REPORT, "spark_jobs.split", "--input", str(raw_dir), "--output", str(split_out)],
        SPLIT_BUCKETS="4",
    )
    assert split.returncode == 0, split.stderr
    assert "pandas loaded: False" in split.stdout
    ours = sorted(p.relative_to(split_out) for p in split_out.rglob("*.parquet"))
    assert ours == sorted(p.relative_to(split_dir) for p in split_dir.rglob("*.parquet"))
    for path in ours:  # the same rows as the split run in this (pandas-importing) process
        assert pq.read_table(split_out / path).equals(pq.read_table(split_dir / path)), path

    etl = _python(
        ["-c", RUN_AND_REPORT, "spark_jobs.etl", "--input", str(split_out), "--output", str(etl_out)],
        ETL_ENGINE="arrow",
    )
    assert etl.returncode == 0, etl.stderr
    assert "pandas loaded: False" in etl.stdout
    monkeypatch.setenv("ETL_ENGINE", "arrow")
    run_directory(LazySpark(_no_spark), split_dir, tmp_path / "reference")
    for path in ours:
        assert pq.read_table(etl_out / path).equals(pq.read_table(tmp_path / "reference" / path)), path


def _no_spark() -> None:
    raise AssertionError("the arrow engine must not start Spark")
