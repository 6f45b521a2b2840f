"""ml_train's training data is built bucket by bucket: same sets as merging everything, bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from spark_jobs.features import (
    FEATURE_COLUMNS,
    KEY,
    LABEL,
    MERGE,
    customer_features_arrow,
    merge_partials_arrow,
)
from spark_jobs.training_data import (
    TrainingError,
    input_files,
    iter_rows,
    plan_split,
    prepare_training_data,
    uniform_key,
)

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = [*FEATURE_COLUMNS, LABEL]


def merged_at_once(files: list[Path], seed: int, test_fraction: float, per_positive: int):
    """The reference: every partial in one table, merged and split at once (the former ml_train)."""
    customers = customer_features_arrow(merge_partials_arrow(pq.read_table([str(f) for f in files])))
    label = customers.column(LABEL).to_numpy() == 1.0
    u = uniform_key(customers.column(KEY), seed)
    plan, _ = plan_split(u[label], int((~label).sum()), test_fraction, per_positive)
    is_train, is_test = plan.assign(label, u)
    rows = customers.select(COLUMNS)
    return rows.filter(pa.array(is_train)), rows.filter(pa.array(is_test))


def canonical(table: pa.Table) -> pa.Table:
    return table.select(COLUMNS).sort_by([(c, "ascending") for c in COLUMNS]).combine_chunks()


@pytest.mark.spark
def test_streamed_sets_equal_merging_everything_at_once(etl_dir: Path, tmp_path: Path) -> None:
    files = input_files(etl_dir)
    assert len({f.parent for f in files}) < len(files), "the fixture should have several files per bucket"
    prepared = prepare_training_data(files, 11, 0.2, 20, scratch_dir=tmp_path)
    train, test = merged_at_once(files, 11, 0.2, 20)
    assert canonical(pq.read_table(prepared.train_path)).equals(canonical(train))
    assert canonical(pq.read_table(prepared.test_path)).equals(canonical(test))
    counts = prepared.counts
    assert counts["test_positives"] == round(counts["positives"] * 0.2)
    assert counts["train_positives"] + counts["test_positives"] == counts["positives"]
    assert counts["train_negatives"] <= 20 * counts["train_positives"]
    assert counts["test_rows"] == test.num_rows and prepared.directories == 4


@pytest.mark.spark
def test_single_file_buckets_are_read_by_row_group(etl_dir: Path, tmp_path: Path) -> None:
    """One file per bucket (a first day): nothing to merge, the file is read a row group at a time."""
    day_one = tmp_path / "etl"
    for f in input_files(etl_dir):
        if f.name == sorted(p.name for p in f.parent.iterdir())[0]:
            (day_one / f.parent.name).mkdir(parents=True, exist_ok=True)
            pq.write_table(pq.read_table(f), day_one / f.parent.name / f.name, row_group_size=100)
    files = input_files(day_one)
    prepared = prepare_training_data(files, 11, 0.25, 0, scratch_dir=tmp_path / "sets")
    train, test = merged_at_once(files, 11, 0.25, 0)
    assert canonical(pq.read_table(prepared.train_path)).equals(canonical(train))
    assert canonical(pq.read_table(prepared.test_path)).equals(canonical(test))
    # a row group of the sets per row group of the input: no file was read whole
    assert pq.ParquetFile(prepared.test_path).num_row_groups > 2 * len(files)
    assert sum(t.num_rows for t in iter_rows(prepared.test_path)) == test.num_rows


def test_scratch_directory_is_removed_on_close(tmp_path: Path) -> None:
    write_partials(tmp_path / "etl", buckets=2, files_per_bucket=1, customers=500, seed=1)
    prepared = prepare_training_data(input_files(tmp_path / "etl"), 1, 0.2, 20)
    scratch = prepared.train_path.parent
    assert prepared.train_path.is_file() and prepared.test_path.is_file()
    prepared.close()
    assert not scratch.exists()


def test_input_without_partial_columns_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "etl" / "bucket-00" / "day.parquet"
    bad.parent.mkdir(parents=True)
    pq.write_table(pa.table({KEY: ["C1"], "n_tx": [1]}), bad)
    with pytest.raises(TrainingError, match=rf"{bad}: lacks column\(s\) \['n_fraud'"):
        prepare_training_data([bad], 1, 0.2, 20)


def test_too_few_fraud_customers_is_a_clear_error(tmp_path: Path) -> None:
    write_partials(tmp_path / "etl", buckets=2, files_per_bucket=1, customers=50, seed=2, fraud_every=0)
    with pytest.raises(TrainingError, match="need at least 2 customers of each class, got 0 fraud"):
        prepare_training_data(input_files(tmp_path / "etl"), 1, 0.2, 20)


# -- bounded memory ---------------------------------------------------------------------------
def write_partials(
    root: Path, buckets: int, files_per_bucket: int, customers: int, seed: int, fraud_every: int = 97
) -> int:
    """etl-shaped partials: ``customers`` per bucket, each in every file of its bucket; total bytes."""
    rng = np.random.default_rng(seed)
    total = 0
    for b in range(buckets):
        ids = pa.array([f"C{b * customers + i + 1_000_000}" for i in range(customers)])
        for k in range(files_per_bucket):
            columns = {KEY: ids}
            for name in MERGE:
                values = rng.integers(1, 1000, size=customers).astype(
                    np.float64 if "sum_" in name else np.int64
                )
                columns[name] = pa.array(values)
            fraud = np.zeros(customers, dtype=np.int64)
            if fraud_every:
                fraud[(np.arange(customers) + k) % fraud_every == 0] = 1
            columns["n_fraud"] = pa.array(fraud)
            table = pa.table(columns)
            total += table.nbytes
            path = root / f"bucket-{b:02d}" / f"day-{k}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
    return total


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_child(mode: str, etl: Path, scratch: Path) -> None:
    """In a fresh process: peak memory while building the sets, printed as JSON.

    ``arrow_peak_mb``: the most Arrow memory allocated at once (deterministic: the tables);
    ``rss_growth_mb``: peak RSS above the RSS before the run (what the OS sees; allocator noise).
    """
    files = input_files(etl)
    # Warm up imports and the allocator on one bucket, then measure the real run from here.
    prepare_training_data([f for f in files if f.parent == files[0].parent], 1, 0.2, 20, scratch / "warm")
    before = _rss_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (the peak) to the current RSS
    if mode == "streamed":
        prepare_training_data(files, 1, 0.2, 20, scratch / "sets")
    else:
        train, test = merged_at_once(files, 1, 0.2, 20)
        assert pc.sum(train.column(LABEL)).as_py() > 0 and test.num_rows > 0
    growth = (_rss_kb("VmHWM") - before) / 1024
    print(
        json.dumps({"rss_growth_mb": growth, "arrow_peak_mb": pa.default_memory_pool().max_memory() / 2**20})
    )


def peak_memory_mb(mode: str, etl: Path, scratch: Path) -> dict[str, float]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, __file__, mode, str(etl), str(scratch)],
        env={**os.environ, "PYTHONPATH": path},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_memory_is_bounded_by_one_bucket_not_the_data_set(tmp_path: Path) -> None:
    """Peak memory (not time) of building the sets: the same for 2 and 16 buckets of one size, and
    a fraction of what merging every bucket at once (the former ml_train) needs on the same input."""
    few, many = tmp_path / "few", tmp_path / "many"
    write_partials(few / "etl", buckets=2, files_per_bucket=2, customers=30_000, seed=3)
    size = write_partials(many / "etl", buckets=16, files_per_bucket=2, customers=30_000, seed=3) / 2**20
    streamed_few = peak_memory_mb("streamed", few / "etl", few)
    streamed = peak_memory_mb("streamed", many / "etl", many)
    at_once = peak_memory_mb("at_once", many / "etl", many)
    report = (
        f"input {size:.0f} MB as Arrow; streamed 2 buckets {streamed_few}, 16 {streamed}; at once {at_once}"
    )
    bound = size / 3  # about five buckets' worth: a bucket's partials, merged, features, the sets
    assert at_once["arrow_peak_mb"] > size > bound, report  # the former code holds all and more
    assert streamed["arrow_peak_mb"] < bound, report
    assert streamed["arrow_peak_mb"] < streamed_few["arrow_peak_mb"] * 1.1, report  # not the bucket count
    assert streamed["rss_growth_mb"] < at_once["rss_growth_mb"] / 3, report


if __name__ == "__main__":
    measure_child(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
