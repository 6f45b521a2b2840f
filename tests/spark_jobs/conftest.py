"""Small generated PaySim data shared by the spark_jobs tests (laid out like /pfs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_jobs.generate import GenerateConfig, generate

# Fraud is boosted (PaySim has ~0.13 %) so that a few thousand rows hold enough fraud
# customers for a stable test split; everything else follows the PaySim shape.
SMALL = GenerateConfig(rows=24_000, customers=6_000, days=2, seed=7, fraud_rate=0.03, chunk_rows=5_000)


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/pfs/raw_data: two daily CSV files."""
    root = tmp_path_factory.mktemp("pfs") / "raw_data"
    generate(SMALL, root)
    return root


@pytest.fixture(scope="session")
def split_dir(raw_dir: Path) -> Path:
    """/pfs/split_data: the split output of raw_dir with 4 buckets."""
    from spark_jobs.split import SplitConfig, split_input

    out = raw_dir.parent / "split_data"
    split_input(raw_dir, out, SplitConfig(buckets=4))
    return out


@pytest.fixture(scope="session")
def etl_dir(spark, split_dir: Path) -> Path:
    """/pfs/etl: the etl output of split_dir (every bucket file processed, as run directly)."""
    from spark_jobs.etl import run_directory

    out = split_dir.parent / "etl"
    run_directory(spark, split_dir, out)
    return out
