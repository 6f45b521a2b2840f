"""Each pipeline job run directly on the full-size data, next to the plain PySpark baseline.

Generates the PaySim-sized file once (cached under --data-dir), then runs split, etl and
train as the pipeline's own commands (fresh processes, as in a worker) and the single-script
baseline on the same CSV. Prints wall time and peak RSS (process tree, JVM included) per
stage and the ratio pipeline / baseline; writes the figures to benchmarks/results/stages.json.

    .venv/bin/python benchmarks/stages.py            # 6,362,620 rows
    .venv/bin/python benchmarks/stages.py --rows 500000 --skip-baseline
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spark_jobs.generate import PAYSIM_ROWS, GenerateConfig, generate  # noqa: E402


@dataclass
class StageResult:
    stage: str
    wall_s: float
    peak_rss_mb: float  # the whole process tree (a PySpark job: Python and its JVM)
    returncode: int
    peak_process_rss_mb: float = 0.0  # the largest single process of the tree
    killed_at_cap: bool = False


def run_measured(
    stage: str,
    cmd: list[str],
    env: dict[str, str],
    log_dir: Path,
    memory_cap_mb: float | None = None,
) -> tuple[StageResult, str]:
    """Run ``cmd``, sampling the RSS of its whole process tree; (result, stdout).

    With ``memory_cap_mb``, the tree is killed once its RSS exceeds the cap (``killed_at_cap``).
    """
    log_path = log_dir / f"{stage}.log"
    started = time.monotonic()
    killed = False
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, env=env, cwd=ROOT, start_new_session=True
        )
        # stdout is read in a thread: a child blocked on a full pipe would never end
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read() if proc.stdout else b""))
        reader.start()
        parent = psutil.Process(proc.pid)
        peak = peak_process = 0
        while proc.poll() is None:
            try:
                sizes = [parent.memory_info().rss] + [
                    c.memory_info().rss for c in parent.children(recursive=True)
                ]
                peak, peak_process = max(peak, sum(sizes)), max(peak_process, max(sizes))
            except psutil.Error:
                pass
            if memory_cap_mb is not None and peak > memory_cap_mb * 2**20 and not killed:
                killed = True
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the JVM goes too
            time.sleep(0.1)
        reader.join()
        stdout = b"".join(chunks).decode()
    wall = time.monotonic() - started
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        print(f"{stage} failed (exit {proc.returncode}); log {log_path}:\n{tail}", file=sys.stderr)
    result = StageResult(
        stage,
        round(wall, 2),
        round(peak / 2**20, 1),
        proc.returncode,
        round(peak_process / 2**20, 1),
        killed,
    )
    return result, stdout


def spec_env(pipeline: str) -> dict[str, str]:
    """``transform.env`` of pachyderm_specs/<pipeline>.json."""
    spec = json.loads((ROOT / "pachyderm_specs" / f"{pipeline}.json").read_text())
    return dict(spec["transform"].get("env", {}))


def ensure_data(data_dir: Path, rows: int) -> Path:
    raw = data_dir / f"raw-{rows}"
    csv = raw / "paysim.csv"
    if not csv.exists():
        started = time.monotonic()
        generate(GenerateConfig(rows=rows, seed=42), raw)
        print(f"generated {rows:,} rows in {time.monotonic() - started:.1f}s -> {csv}")
    return csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=PAYSIM_ROWS)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "bench")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="also time a second day (1/30 of the rows, new file): split + etl of its datums only, "
        "with Spark and with the opt-in ETL_ARROW_BELOW_ROWS=100000",
    )
    args = parser.parse_args(argv)

    csv = ensure_data(args.data_dir, args.rows)
    work = args.data_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = None
    if not args.tracking_uri:
        from tests.fixtures.mlflow_server import MlflowServer

        server = MlflowServer(Path(tempfile.mkdtemp(prefix="pachflow-bench-mlflow-"))).start()
        args.tracking_uri = server.tracking_uri
    env["MLFLOW_TRACKING_URI"] = args.tracking_uri
    env["MLFLOW_EXPERIMENT_NAME"] = "bench_stages"
    py = sys.executable
    stages = [
        (
            "split",
            [py, "-m", "spark_jobs.split", "--input", str(csv.parent), "--output", str(work / "split_data")],
        ),
        (
            "etl",
            [py, "-m", "spark_jobs.etl", "--input", str(work / "split_data"), "--output", str(work / "etl")],
        ),
        (
            "train",
            [py, "-m", "spark_jobs.train", "--input", str(work / "etl"), "--output", str(work / "ml_train")],
        ),
    ]
    spec_of = {"split": "split_data", "etl": "etl", "train": "ml_train"}
    results: list[StageResult] = []
    try:
        for stage, cmd in stages:
            # The spec's transform.env (e.g. ETL_ENGINE) applies, as in a Pachyderm worker.
            result, _ = run_measured(stage, cmd, {**spec_env(spec_of[stage]), **env}, work)
            results.append(result)
            print(f"{stage:<9} {result.wall_s:8.1f} s   peak RSS {result.peak_rss_mb:8.0f} MB")
            if result.returncode != 0:
                return 1
        if args.incremental:
            day2 = args.data_dir / f"day2-{args.rows // 30}"
            if not (day2 / "raw").exists():
                generate(GenerateConfig(rows=args.rows // 30, seed=31, prefix="day-31"), day2 / "raw")
            for stage, cmd, extra in [
                (
                    "day2-split",
                    [
                        py,
                        "-m",
                        "spark_jobs.split",
                        "--input",
                        str(day2 / "raw"),
                        "--output",
                        str(work / "d2s"),
                    ],
                    {},
                ),
                (
                    "day2-etl-spark",
                    [py, "-m", "spark_jobs.etl", "--input", str(work / "d2s"), "--output", str(work / "d2e")],
                    {},
                ),
                (
                    "day2-etl-arrow",
                    [py, "-m", "spark_jobs.etl", "--input", str(work / "d2s"), "--output", str(work / "d2a")],
                    {"ETL_ARROW_BELOW_ROWS": "100000"},
                ),
            ]:
                result, _ = run_measured(stage, cmd, {**env, **extra}, work)
                results.append(result)
                print(f"{stage:<15} {result.wall_s:8.1f} s   peak RSS {result.peak_rss_mb:8.0f} MB")
        baseline: dict[str, float] = {}
        if not args.skip_baseline:
            cmd = [py, str(ROOT / "benchmarks" / "baseline_spark.py"), "--csv", str(csv)]
            result, stdout = run_measured("baseline", cmd, env, work)
            results.append(result)
            if result.returncode != 0:
                return 1
            baseline = json.loads(stdout.strip().splitlines()[-1])
    finally:
        if server is not None:
            server.stop()

    run = json.loads((work / "ml_train" / "mlflow_run.json").read_text())
    pipeline_s = sum(r.wall_s for r in results if r.stage in ("split", "etl", "train"))
    print()
    print(f"{'stage':<16}{'wall s':>9}{'peak RSS MB':>13}")
    for r in results:
        print(f"{r.stage:<16}{r.wall_s:>9.1f}{r.peak_rss_mb:>13.0f}")
    print(f"{'pipeline':<16}{pipeline_s:>9.1f}")
    summary = {
        "rows": args.rows,
        "stages": [asdict(r) for r in results],
        "pipeline_s": round(pipeline_s, 2),
        "test_roc_auc": run["metrics"]["test_roc_auc"],
        "test_pr_auc": run["metrics"]["test_pr_auc"],
    }
    print(
        f"model test ROC AUC {run['metrics']['test_roc_auc']:.4f}, PR AUC {run['metrics']['test_pr_auc']:.4f}"
    )
    if baseline:
        summary["baseline"] = baseline
        summary["ratio_pipeline_to_baseline"] = round(pipeline_s / baseline["total_s"], 3)
        print(
            f"baseline  {baseline['total_s']:.1f} s (session {baseline['session_s']:.1f}, etl {baseline['etl_s']:.1f}, "
            f"train {baseline['train_s']:.1f}; ROC AUC {baseline['test_roc_auc']:.4f}); "
            f"pipeline/baseline = {summary['ratio_pipeline_to_baseline']:.2f}"
        )
    out = ROOT / "benchmarks" / "results" / "stages.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
