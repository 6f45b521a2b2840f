"""The benchmark harness's parts that decide what it reports: baselines, memory cap, disk use, spread."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest

from benchmarks.baseline_pandas import DTYPES, customer_features, run_baseline
from benchmarks.full_pipeline import airflow_phases, disk_bytes, spread, summarise
from benchmarks.stages import run_measured
from spark_jobs.features import FEATURE_COLUMNS, LABEL, customer_features_arrow, partial_aggregates_arrow
from spark_jobs.generate import GenerateConfig, generate
from spark_jobs.schema import ARROW_SCHEMA


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = GenerateConfig(rows=20_000, customers=4_000, seed=5, fraud_rate=0.03, chunk_rows=5_000)
    (path,) = generate(config, tmp_path_factory.mktemp("raw"))
    return path


def test_pandas_baseline_has_the_pipelines_features(small_csv: Path) -> None:
    import pandas as pd

    ours = customer_features(pd.read_csv(small_csv, engine="pyarrow", dtype=DTYPES))
    assert list(ours.columns) == [*FEATURE_COLUMNS, LABEL]
    table = pacsv.read_csv(small_csv, convert_options=pacsv.ConvertOptions(column_types=ARROW_SCHEMA))
    pipeline = customer_features_arrow(partial_aggregates_arrow(table)).to_pandas().set_index("nameOrig")
    ours = ours.loc[pipeline.index]
    for column in FEATURE_COLUMNS:
        np.testing.assert_allclose(ours[column].to_numpy(float), pipeline[column].to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal((ours[LABEL] > 0).to_numpy(), pipeline[LABEL].to_numpy() == 1.0)


def test_pandas_baseline_reports_a_probability_auc(small_csv: Path) -> None:
    report = run_baseline(str(small_csv))
    assert report["customers"] > 3_000 and 0.5 < report["test_roc_auc"] <= 1.0


def test_a_process_over_the_memory_cap_is_stopped_and_reported(tmp_path: Path) -> None:
    grow = "import time\nblocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))\n    time.sleep(0.05)\n"
    result, _ = run_measured(
        "grow", [sys.executable, "-c", grow], dict(os.environ), tmp_path, memory_cap_mb=300
    )
    assert result.killed_at_cap and result.returncode != 0
    assert 300 < result.peak_rss_mb < 1000 and result.peak_process_rss_mb > 300


def test_a_process_under_the_cap_runs_to_the_end(tmp_path: Path) -> None:
    code = "print('x' * 200_000)"  # more than a pipe buffer: stdout is drained while it runs
    result, out = run_measured(
        "small", [sys.executable, "-c", code], dict(os.environ), tmp_path, memory_cap_mb=2000
    )
    assert not result.killed_at_cap and result.returncode == 0 and out.strip() == "x" * 200_000


def test_disk_use_counts_a_hard_linked_file_once(tmp_path: Path) -> None:
    data = tmp_path / "store" / "blob"
    data.parent.mkdir()
    data.write_bytes(os.urandom(1 << 20))
    one = disk_bytes(tmp_path / "store")
    os.link(data, tmp_path / "store" / "link")
    assert disk_bytes(tmp_path / "store") == one >= 1 << 20
    assert disk_bytes(tmp_path / "store", shared_with_outside=True) == 0
    os.link(data, tmp_path / "outside")
    assert disk_bytes(tmp_path / "store", shared_with_outside=True) == one


def test_spread_is_median_min_max() -> None:
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "values": [3.0, 1.0, 2.0]}


def test_airflow_phases_split_the_dag_childs_wall_time() -> None:
    marks = {"child_main": 100.5, "parsed": 102.0, "tested": 120.0, "reported": 120.1}
    tasks = {"a": {"start": 103.0, "end": 110.0}, "b": {"start": 110.1, "end": 119.5}, "c": {"start": None}}
    phases = airflow_phases({"marks": marks}, tasks, started_at=100.0, ended_at=120.5)
    assert phases == {
        "process_start": 0.5,
        "parse": 1.5,
        "until_first_task": 1.0,
        "tasks": 16.5,
        "after_last_task": 1.0,
    }
    assert airflow_phases({}, tasks, 100.0, 120.5) == {}  # a report without marks: nothing to split


def _phase(phase: str, wall: float, largest: float) -> dict:
    return {
        "phase": phase,
        "wall_s": wall,
        "stages_s": {"push": 1.0, "split": 2.0, "etl": 3.0, "train": 4.0},
        "test_roc_auc": 0.99,
        "peak_process_rss_mb": {"train/java": largest, "train/python3": 300.0},
        "pachd_disk_mb": 10.0,
    }


def test_summary_has_medians_ratios_and_failures_of_interleaved_repeats() -> None:
    runs = [
        {
            "baseline_spark": {"wall_s": 100.0 + i, "test_roc_auc": 0.98},
            "baseline_pandas": {"wall_s": 40.0, "error": "stopped by the harness at 12288 MB RSS"}
            if i == 1
            else {"wall_s": 30.0 + i, "test_roc_auc": 0.99},
            "full_run": _phase("full_run", 20.0 + 10 * i, 1000.0 + i),
            "second_day": _phase("second_day", 10.0, 900.0),
            "rerun": {**_phase("rerun", 5.0, 100.0), "error": "DAG run failed (exit 1)"}
            if i == 2
            else _phase("rerun", 5.0, 100.0),
        }
        for i in range(3)
    ]
    summary = summarise(runs, ["spark", "pandas"], rows=1_000)
    medians = summary["medians"]
    assert medians["dag_full_run_s"] == {
        "median": 30.0,
        "min": 20.0,
        "max": 40.0,
        "values": [20.0, 30.0, 40.0],
    }
    assert medians["baseline_pandas_s"]["values"] == [30.0, 32.0]  # the failed one is not a time
    assert medians["dag_rerun_s"]["values"] == [5.0, 5.0]
    assert summary["ratios"] == {"DAG/spark": round(30.0 / 101.0, 3), "DAG/pandas": round(30.0 / 31.0, 3)}
    assert summary["failures"] == [
        "repeat 2 baseline_pandas: stopped by the harness at 12288 MB RSS",
        "repeat 3 rerun: DAG run failed (exit 1)",
    ]
    assert summary["max_process_rss_mb"] == {
        "process": "full_run: train/java",
        "mb": 1002.0,
        "within_target": True,
    }
    assert summary["second_day_non_training_ratio"] == 1.0
