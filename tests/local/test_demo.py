"""The demo driver's own logic: precise failure when parts are missing, incremental day sources,
sample reuse. (The full `make demo` is the e2e path; its timing is in the report/README.)"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from pachflow_tools import demo
from pachflow_tools.local.settings import LocalSettings


@pytest.fixture
def options(tmp_path):
    settings = LocalSettings.resolve(state_dir=tmp_path / "state")
    return demo.DemoOptions(rows=3_000, days=3, seed=1, settings=settings)


def test_preflight_names_each_missing_part(options, tmp_path):
    bare = dataclasses.replace(options, settings=dataclasses.replace(options.settings, project=tmp_path))
    missing = demo.preflight(bare)
    assert missing == [f"{tmp_path / 'dags' / 'fraud_detection.py'} (the fraud_detection DAG) does not exist"]


def test_preflight_passes_on_this_checkout(options):
    assert demo.preflight(options) == []


def test_run_stops_with_the_missing_parts_before_starting_anything(options, tmp_path):
    bare = dataclasses.replace(options, settings=dataclasses.replace(options.settings, project=tmp_path))
    with pytest.raises(demo.DemoFailed, match="fraud_detection DAG"):
        demo.run(bare)
    assert not bare.settings.stack_file.exists()  # no service was started


def test_generated_sample_is_reused_and_day_sources_grow(options):
    files = demo.generate_sample(options)
    assert [path.name for path in files] == ["paysim-day-01.csv", "paysim-day-02.csv", "paysim-day-03.csv"]
    mtimes = [path.stat().st_mtime_ns for path in files]
    assert demo.generate_sample(options) == files
    assert [path.stat().st_mtime_ns for path in files] == mtimes  # same parameters: not regenerated
    day1 = demo.source_for_days(options, files, 1)
    assert sorted(p.name for p in day1.iterdir()) == ["paysim-day-01.csv"]
    day2 = demo.source_for_days(options, files, 2)
    assert sorted(p.name for p in day2.iterdir()) == ["paysim-day-01.csv", "paysim-day-02.csv"]
    assert (day2 / "paysim-day-02.csv").read_bytes() == files[1].read_bytes()


def test_bad_sizes_are_refused():
    result = subprocess.run(
        [sys.executable, "-m", "pachflow_tools.demo", "--days", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--days >= 2" in result.stdout


def test_lineage_falls_back_to_the_newest_recorded_run():
    newest = {"run_id": "scheduled__x", "lineage": {"mlflow_run_id": "abc"}}
    assert demo.lineage_of({"run_id": "manual__y", "lineage": {}, "newest_lineage": newest}) == {
        "mlflow_run_id": "abc"
    }
    with pytest.raises(demo.DemoFailed, match="recorded an XCom `lineage`"):
        demo.lineage_of({"run_id": "manual__y", "lineage": {}, "newest_lineage": None})


def test_follow_up_commands_name_the_venv_scripts_from_where_make_runs(monkeypatch):
    venv_root = Path(sys.executable).parents[2]
    monkeypatch.chdir(venv_root)
    bin_dir = Path(sys.executable).parent.relative_to(venv_root)
    commands = demo.follow_up_commands("r" * 32, "c" * 32)
    assert commands[:3] == [
        f"{bin_dir}/pachflow lineage --run-id {'r' * 32}",
        f"{bin_dir}/pachflow lineage --commit raw_data@{'c' * 32}",
        f"{bin_dir}/pachflow rejects split_data@master",
    ]
    assert demo.airflow_command("dags", "test", "x") == (
        f'eval "$({bin_dir}/pachflow local env)" && {bin_dir}/airflow dags test x'
    )
