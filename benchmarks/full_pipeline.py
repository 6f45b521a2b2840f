"""The whole ``fraud_detection`` DAG on full-size data, side by side with the plain PySpark script.

One invocation, same data, same machine (issue 8):
  (a) the plain single-script PySpark baseline (benchmarks/baseline_spark.py) on the day-1 CSV;
  (b) the DAG via ``dag.test()`` on the embedded default (a fresh pachd-lite + MLflow in a temp
      state dir, a fresh Airflow DB) from an empty state: stage wall times from pachd-lite's
      JobInfo, task durations from Airflow, peak RSS per process (psutil sampling), (b)/(a);
  (c) a second day (a new file with 1/30 of the rows): wall time, datums processed/skipped;
  (d) a rerun with no new data: wall time, and that no etl/ml_train job (no Spark) started.
The data set is generated once into .local/bench/ and reused. Results go to
benchmarks/results/latest.json (``--quick``: benchmarks/results/quick.json) and a table.

    .venv/bin/python benchmarks/full_pipeline.py            # 6,362,620 rows (minutes)
    .venv/bin/python benchmarks/full_pipeline.py --quick    # 60,000 rows: smoke-test the harness
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.stages import run_measured  # noqa: E402
from spark_jobs.generate import PAYSIM_ROWS, GenerateConfig, generate  # noqa: E402

DAG_ID = "fraud_detection"
PIPELINES = ("split_data", "etl", "ml_train")
STAGE_OF_MODULE = {"spark_jobs.split": "split", "spark_jobs.etl": "etl", "spark_jobs.train": "train"}
QUICK_ROWS = 60_000
CACHE = ROOT / ".local" / "bench"
RESULTS = ROOT / "benchmarks" / "results"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- data ------------------------------------------------------------------------------------
def ensure_data(rows: int) -> tuple[Path, Path]:
    """(day-1 CSV with ``rows`` rows, day-2 CSV with rows/30 rows of the same customer population)."""
    folder = CACHE / f"data-{rows}"
    day1, day2 = folder / "paysim-day-01.csv", folder / "paysim-day-02.csv"
    for path, config in (
        (day1, GenerateConfig(rows=rows, seed=42, prefix="paysim-day-01")),
        (day2, GenerateConfig(rows=rows // 30, customers=rows // 4, seed=43, prefix="paysim-day-02")),
    ):
        if not path.exists():
            started = time.monotonic()
            written = generate(config, folder / "tmp")
            written[0].replace(path)
            shutil.rmtree(folder / "tmp", ignore_errors=True)
            print(
                f"generated {config.rows:,} rows in {time.monotonic() - started:.1f}s -> {path}", flush=True
            )
    return day1, day2


def source_dir(base: Path, name: str, files: list[Path]) -> Path:
    """A folder of links to ``files``: the DAG's ``source`` param."""
    folder = base / "sources" / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f.name).symlink_to(f)
    return folder


# -- memory sampling -------------------------------------------------------------------------
@dataclass
class RssSampler:
    """Samples the RSS of named process trees every ``interval`` s; pachd-lite's pipeline
    subprocesses (and their JVMs) are attributed to their stage, not to pachd-lite."""

    roots: dict[str, int] = field(default_factory=dict)
    interval: float = 0.25
    peaks_mb: dict[str, float] = field(default_factory=dict)
    seen_stages: set[str] = field(default_factory=set)
    _stage_of_process: dict[tuple[int, float], str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def reset(self) -> dict[str, float]:
        """Return the peaks so far and start over (one phase of the benchmark each)."""
        peaks, self.peaks_mb, self.seen_stages = self.peaks_mb, {}, set()
        return {k: round(v, 1) for k, v in sorted(peaks.items())}

    def _own_stage(self, proc: psutil.Process) -> str | None:
        key = (proc.pid, proc.create_time())
        if key in self._stage_of_process:
            return self._stage_of_process[key]
        cmdline = " ".join(proc.cmdline())
        stage = next((stage for module, stage in STAGE_OF_MODULE.items() if module in cmdline), None)
        # Only a match is final: a child forked by pachd-lite shows pachd-lite's command line
        # until it execs the job, so a miss is read again at the next sample.
        if stage:
            self._stage_of_process[key] = stage
        return stage

    def _stage(self, proc: psutil.Process, root_pid: int) -> str | None:
        current: psutil.Process | None = proc
        while current is not None and current.pid != root_pid:
            stage = self._own_stage(current)
            if stage:
                return stage
            current = current.parent()
        return None

    def _sample(self) -> None:
        totals: dict[str, int] = {}
        for name, pid in list(self.roots.items()):
            try:
                root = psutil.Process(pid)
                totals[name] = totals.get(name, 0) + root.memory_info().rss
                for child in root.children(recursive=True):
                    try:
                        stage = self._stage(child, pid) if name == "pachd-lite" else None
                        key = stage or name
                        totals[key] = totals.get(key, 0) + child.memory_info().rss
                        if stage:
                            self.seen_stages.add(stage)
                    except psutil.Error:
                        continue
            except psutil.Error:
                continue
        totals["whole run"] = sum(totals.values())
        for key, value in totals.items():
            self.peaks_mb[key] = max(self.peaks_mb.get(key, 0.0), value / 2**20)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()


# -- the DAG run (child process) -------------------------------------------------------------
def dag_child(conf: dict[str, Any], out: Path) -> int:
    """In the child process: ``dag.test(run_conf=conf)``; write task states/durations and XComs."""
    started = time.monotonic()
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / f"{DAG_ID}.py")).get_dag(DAG_ID)
    parsed = time.monotonic()
    dr = dag.test(run_conf=conf)
    tested = time.monotonic()
    tasks = {}
    for ti in dr.get_task_instances():
        tasks[ti.task_id] = {
            "state": str(ti.state),
            "duration_s": round(ti.duration or 0.0, 2),
            "start": ti.start_date.timestamp() if ti.start_date else None,
            "end": ti.end_date.timestamp() if ti.end_date else None,
        }
    push = dr.get_task_instance("push_raw_data")
    lineage = dr.get_task_instance("record_lineage")
    report = {
        "run_id": dr.run_id,
        "state": str(dr.state),
        "tasks": tasks,
        "commit_set": push.xcom_pull(task_ids="push_raw_data") if push else None,
        "lineage": lineage.xcom_pull(task_ids="record_lineage", key="lineage") if lineage else None,
        "import_and_parse_s": round(parsed - started, 2),
        "dag_test_s": round(tested - parsed, 2),
    }
    out.write_text(json.dumps(report, default=str))
    return 0 if report["state"] == "success" else 1


@dataclass
class Stack:
    settings: Any
    env: dict[str, str]
    pachd_pid: int
    mlflow_pid: int

    def client(self) -> Any:
        from pachyderm_sdk import Client

        return Client(host=self.settings.client_host, port=self.settings.pachd_port)


def start_stack(base: Path) -> Stack:
    """A fresh pachd-lite + MLflow (``pachflow local up`` on a temp state dir and free ports)."""
    from pachflow_tools.local.airflow_env import process_environment
    from pachflow_tools.local.ports import find_free_port
    from pachflow_tools.local.settings import LocalSettings
    from pachflow_tools.local.stack import up

    settings = LocalSettings.resolve(base / "state", find_free_port(), find_free_port())
    record = up(settings)
    env = process_environment(settings)
    env["PYTHONUNBUFFERED"] = "1"
    code = subprocess.call(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if code != 0:
        raise RuntimeError(f"airflow db migrate failed (exit {code}) in {settings.airflow_home}")
    return Stack(settings, env, record.services["pachd"].pid, record.services["mlflow"].pid)


def jobs_of(stack: Stack) -> dict[str, list[Any]]:
    from pachyderm_sdk.api import pps

    client = stack.client()
    found: dict[str, list[Any]] = {}
    for name in PIPELINES:
        try:
            found[name] = list(client.pps.list_job(pipeline=pps.Pipeline(name=name)))
        except grpc.RpcError as err:  # before the first run the pipelines do not exist yet
            if err.code() != grpc.StatusCode.NOT_FOUND:
                raise
            found[name] = []
    return found


def run_dag_phase(
    stack: Stack, sampler: RssSampler, conf: dict[str, Any], log_dir: Path, phase: str
) -> dict[str, Any]:
    """Run the DAG once in a child process; wall time, Airflow tasks, pachd-lite jobs, peak RSS."""
    from pachyderm_sdk.api import pps

    before = {name: {j.job.id for j in jobs} for name, jobs in jobs_of(stack).items()}
    out = log_dir / f"{phase}.json"
    log = log_dir / f"{phase}.log"
    load = load_average()
    started = time.monotonic()
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--dag-child", json.dumps(conf), "--dag-child-out", str(out)],
            env=stack.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        sampler.roots["airflow"] = proc.pid
        code = proc.wait()
    wall = time.monotonic() - started
    sampler.roots.pop("airflow", None)
    time.sleep(sampler.interval * 2)
    seen = sorted(sampler.seen_stages)
    peaks = sampler.reset()
    if code != 0 or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{phase}: DAG run failed (exit {code}); log {log}:\n{tail}")
    report = json.loads(out.read_text())
    new_jobs = {}
    new_job_count = {}
    for name, jobs in jobs_of(stack).items():
        fresh = [job for job in jobs if job.job.id not in before[name]]
        new_job_count[name] = len(fresh)
        # The run's own job has the commit-set id of its push; creating a pipeline also makes an
        # (empty) job of its own, which is not the one to time.
        ours = [job for job in fresh if job.job.id == report["commit_set"]]
        for job in ours[:1]:
            new_jobs[name] = {
                "job": job.job.id,
                "state": pps.JobState(job.state).name,
                "wall_s": round((job.finished - job.started).total_seconds(), 2)
                if job.started and job.finished
                else None,
                "queued_s": round((job.started - job.created).total_seconds(), 2)
                if job.started and job.created
                else None,
                "started": job.started.timestamp() if job.started else None,
                "finished": job.finished.timestamp() if job.finished else None,
                "datums_processed": job.data_processed,
                "datums_skipped": job.data_skipped,
                "datums_total": job.data_total,
            }
    tasks = report["tasks"]
    metrics: dict[str, float] = {}
    if report["lineage"] and report["lineage"].get("mlflow_run_id"):
        from mlflow import MlflowClient

        run = MlflowClient(stack.settings.mlflow_tracking_uri).get_run(report["lineage"]["mlflow_run_id"])
        metrics = {k: round(v, 4) for k, v in run.data.metrics.items() if k.startswith("test_")}
    push_s = tasks.get("push_raw_data", {}).get("duration_s", 0.0)
    lineage_s = tasks.get("record_lineage", {}).get("duration_s", 0.0)
    job_times = [(j["started"], j["finished"]) for j in new_jobs.values() if j["started"] and j["finished"]]
    pipelines_s = (max(f for _, f in job_times) - min(s for s, _ in job_times)) if job_times else 0.0
    stages = {
        "push": push_s,
        **{
            ("train" if k == "ml_train" else "split" if k == "split_data" else k): v["wall_s"]
            for k, v in new_jobs.items()
        },
        "lineage": lineage_s,
    }
    stages["airflow_overhead"] = round(wall - push_s - pipelines_s - lineage_s, 2)
    return {
        "phase": phase,
        "wall_s": round(wall, 2),
        "load_average_before": load,
        "load_average_after": load_average(),
        "stages_s": stages,
        "pipelines_span_s": round(pipelines_s, 2),
        "airflow_import_and_parse_s": report["import_and_parse_s"],
        "dag_test_s": report["dag_test_s"],
        "tasks": tasks,
        "jobs": new_jobs,
        "new_jobs_per_pipeline": new_job_count,
        "spark_stages_seen": [s for s in seen if s in ("etl", "train")],
        "peak_rss_mb": peaks,
        "run_id": report["run_id"],
        "test_roc_auc": metrics.get("test_roc_auc"),
        "test_pr_auc": metrics.get("test_pr_auc"),
        "lineage": report["lineage"],
    }


def run_baseline(csv: Path, work: Path) -> dict[str, Any]:
    load = load_average()
    cmd = [sys.executable, str(ROOT / "benchmarks" / "baseline_spark.py"), "--csv", str(csv)]
    result, stdout = run_measured("baseline", cmd, {**os.environ, "PYTHONUNBUFFERED": "1"}, work)
    if result.returncode != 0:
        raise RuntimeError(f"baseline failed (exit {result.returncode}); see {work / 'baseline.log'}")
    return {
        "wall_s": result.wall_s,
        "peak_rss_mb": result.peak_rss_mb,
        "load_average_before": load,
        "load_average_after": load_average(),
        **json.loads(stdout.strip().splitlines()[-1]),
    }


# -- report ----------------------------------------------------------------------------------
def print_table(summary: dict[str, Any]) -> None:
    a, b = summary.get("baseline"), summary["full_run"]
    print()
    print(f"rows {summary['rows']:,}   load average at start {summary['load_average_start']}")
    if a:
        print(
            f"(a) plain PySpark script   {a['wall_s']:7.1f} s   peak RSS {a['peak_rss_mb']:6.0f} MB   "
            f"ROC AUC {a['test_roc_auc']}"
        )
    ratio = f"(b)/(a) = {summary['ratio_b_to_a']:.2f}" if a else "(no baseline)"
    print(f"(b) fraud_detection DAG    {b['wall_s']:7.1f} s   {ratio}   ROC AUC {b.get('test_roc_auc')}")
    for stage, seconds in b["stages_s"].items():
        print(f"      {stage:<18}{seconds if seconds is not None else float('nan'):7.1f} s")
    print("    peak RSS MB: " + ", ".join(f"{k} {v:.0f}" for k, v in b["peak_rss_mb"].items()))
    for key, title in (("second_day", "(c) second day (+1/30)"), ("rerun", "(d) rerun, no new data")):
        r = summary[key]
        print(
            f"{title:<27}{r['wall_s']:7.1f} s   stages "
            + ", ".join(f"{k} {v:.1f}" for k, v in r["stages_s"].items() if v is not None)
        )
        for name, job in r["jobs"].items():
            print(
                f"      {name:<11} processed {job['datums_processed']:>3}, skipped {job['datums_skipped']:>3} "
                f"of {job['datums_total']:>3}"
            )
        if not r["jobs"]:
            print("      no pipeline job started")
    print(f"(c) non-training stages vs full run: {summary['second_day_non_training_ratio']:.3f}")
    print(
        f"(d) Spark jobs started: {summary['rerun']['spark_stages_seen'] or 'none'}; new jobs: {list(summary['rerun']['jobs']) or 'none'}"
    )


def non_training_s(phase: dict[str, Any]) -> float:
    s = phase["stages_s"]
    return sum(s.get(k) or 0.0 for k in ("push", "split", "etl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None, help=f"rows of day 1 (default {PAYSIM_ROWS:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows: smoke-test the harness")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temp state dir for inspection")
    parser.add_argument("--output", type=Path, default=None, help="result JSON (default results/latest.json)")
    parser.add_argument("--dag-child", help=argparse.SUPPRESS)
    parser.add_argument("--dag-child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dag_child:
        return dag_child(json.loads(args.dag_child), args.dag_child_out)

    rows = args.rows or (QUICK_ROWS if args.quick else PAYSIM_ROWS)
    output = args.output or RESULTS / ("latest.json" if rows == PAYSIM_ROWS else "quick.json")
    load_start = load_average()
    day1, day2 = ensure_data(rows)
    base = Path(tempfile.mkdtemp(prefix="pachflow-bench-", dir=CACHE))
    log_dir = base / "logs"
    log_dir.mkdir(parents=True)
    print(f"state and logs: {base}", flush=True)
    summary: dict[str, Any] = {
        "rows": rows,
        "second_day_rows": rows // 30,
        "command": " ".join([".venv/bin/python", "benchmarks/full_pipeline.py", *(argv or sys.argv[1:])]),
        "cpus": os.cpu_count(),
        "load_average_start": load_start,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not args.skip_baseline:
        print("(a) baseline: plain PySpark script ...", flush=True)
        summary["baseline"] = run_baseline(day1, log_dir)
        print(f"    {summary['baseline']['wall_s']:.1f} s", flush=True)
    stack = None
    sampler = RssSampler()
    try:
        started = time.monotonic()
        stack = start_stack(base)
        summary["stack_start_s"] = round(time.monotonic() - started, 2)
        sampler.roots.update({"pachd-lite": stack.pachd_pid, "mlflow": stack.mlflow_pid})
        sampler.start()
        common = {"mlflow_experiment": "bench-full-pipeline", "model_name": "bench-fraud-detector"}
        phases = (
            ("full_run", "(b) DAG, day 1 from an empty state", [day1]),
            ("second_day", "(c) DAG, days 1-2 (second day added)", [day1, day2]),
            ("rerun", "(d) DAG, days 1-2 again (no new data)", [day1, day2]),
        )
        for key, title, files in phases:
            print(f"{title} ...", flush=True)
            source = source_dir(base, key, files)
            summary[key] = run_dag_phase(stack, sampler, {**common, "source": str(source)}, log_dir, key)
            print(f"    {summary[key]['wall_s']:.1f} s  {summary[key]['stages_s']}", flush=True)
    finally:
        sampler.stop()
        if stack is not None:
            from pachflow_tools.local.stack import down

            down(stack.settings)
        if not args.keep:
            shutil.rmtree(base / "state", ignore_errors=True)
    if "baseline" in summary:
        summary["ratio_b_to_a"] = round(summary["full_run"]["wall_s"] / summary["baseline"]["wall_s"], 3)
    summary["second_day_non_training_ratio"] = round(
        non_training_s(summary["second_day"]) / max(non_training_s(summary["full_run"]), 1e-9), 3
    )
    summary["load_average_end"] = load_average()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print_table(summary)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
