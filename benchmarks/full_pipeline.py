"""The whole ``fraud_detection`` DAG side by side with two untracked baselines, at any scale.

One invocation, same data, same machine (issues 8 and 19):
  (A) the plain single-script PySpark baseline (benchmarks/baseline_spark.py) on the day-1 CSV;
  (B) the pandas + scikit-learn baseline (benchmarks/baseline_pandas.py) on the same CSV;
  (C) the DAG via ``dag.test()`` on the embedded default (a fresh pachd-lite + MLflow in a temp
      state dir, a fresh Airflow DB):
      (b) day 1 from an empty state: stage wall times from pachd-lite's JobInfo, task durations
          from Airflow, peak RSS per stage and per process (psutil sampling), pachd-lite's disk
          use against the input size;
      (c) a second day (a new file with 1/30 of the rows): wall time, datums processed/skipped;
      (d) a rerun with no new data: wall time, and that no etl/ml_train job (no Spark) started.
``--repeat N`` interleaves them (A B C A B C ...) and reports the median and spread of each.
A baseline that fails (or that the harness stops at ``--memory-cap-gb``, before the machine's
OOM killer picks a victim) is a result: its error, time and peak RSS are reported, not hidden.
Data (``--scale``: a multiple of PaySim's 6,362,620 rows) is generated once, streamed in chunks,
into .local/bench/ and reused. Results go to benchmarks/results/latest.json (1x),
scale-<x>.json (other scales) or quick.json (``--quick``), and a table.

    .venv/bin/python benchmarks/full_pipeline.py                   # 1x (minutes)
    .venv/bin/python benchmarks/full_pipeline.py --repeat 3        # 1x, medians of 3
    .venv/bin/python benchmarks/full_pipeline.py --scale 10        # 63.6 M rows
    .venv/bin/python benchmarks/full_pipeline.py --quick           # 60,000 rows: smoke-test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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

from benchmarks.pachd_disk import DiskSampler, disk_breakdown, files_under  # noqa: E402
from benchmarks.stages import run_measured  # noqa: E402
from spark_jobs.generate import PAYSIM_ROWS, GenerateConfig  # noqa: E402

DAG_ID = "fraud_detection"
PIPELINES = ("split_data", "etl", "ml_train")
STAGE_OF_MODULE = {"spark_jobs.split": "split", "spark_jobs.etl": "etl", "spark_jobs.train": "train"}
QUICK_ROWS = 60_000
MEMORY_TARGET_MB = 4096  # no process of the DAG over this (issue 19)
BASELINES = {"spark": "baseline_spark.py", "pandas": "baseline_pandas.py"}
CACHE = ROOT / ".local" / "bench"
RESULTS = ROOT / "benchmarks" / "results"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- data ------------------------------------------------------------------------------------
def ensure_data(rows: int, log_dir: Path) -> tuple[Path, Path, dict[str, Any]]:
    """(day-1 CSV with ``rows`` rows, day-2 CSV with rows/30 rows of the same customer population,
    how generating them went). Generated in a child process (``pachflow generate``, chunked), so
    its peak RSS shows the data is streamed, not held in memory."""
    folder = CACHE / f"data-{rows}"
    day1, day2 = folder / "paysim-day-01.csv", folder / "paysim-day-02.csv"
    record = folder / "generated.json"  # how each file was generated, kept with the cached data
    generated: dict[str, Any] = json.loads(record.read_text()) if record.exists() else {}
    for path, config in (
        (day1, GenerateConfig(rows=rows, seed=42, prefix="paysim-day-01")),
        (day2, GenerateConfig(rows=rows // 30, customers=rows // 4, seed=43, prefix="paysim-day-02")),
    ):
        if path.exists():
            continue
        tmp = folder / "tmp"
        cmd = [
            sys.executable,
            "-m",
            "spark_jobs.generate",
            "--output",
            str(tmp),
            "--rows",
            str(config.rows),
            "--customers",
            str(config.n_customers),
            "--seed",
            str(config.seed),
            "--prefix",
            config.prefix,
        ]
        result, _ = run_measured(f"generate-{config.prefix}", cmd, {**os.environ}, log_dir)
        if result.returncode != 0:
            raise RuntimeError(f"generating {path} failed (exit {result.returncode}); see {log_dir}")
        (tmp / f"{config.prefix}.csv").replace(path)
        shutil.rmtree(tmp, ignore_errors=True)
        generated[path.name] = {
            "rows": config.rows,
            "wall_s": result.wall_s,
            "peak_rss_mb": result.peak_rss_mb,
            "load_average_after": load_average(),
        }
        record.write_text(json.dumps(generated, indent=2) + "\n")
        print(
            f"generated {config.rows:,} rows in {result.wall_s:.1f}s (peak RSS {result.peak_rss_mb:.0f} MB) -> {path}"
        )
    return day1, day2, generated


def disk_bytes(root: Path, shared_with_outside: bool = False) -> int:
    """Bytes of disk held by the files under ``root`` (allocated blocks, each hard-linked file once).

    ``shared_with_outside``: only the files that also have a name outside ``root`` (hard links,
    e.g. an input stored without a copy), which cost no disk beyond that input.
    """
    links: dict[tuple[int, int], list[int]] = {}  # inode -> [names seen, st_nlink, bytes]
    for _, st in files_under([root]):
        seen = links.setdefault((st.st_dev, st.st_ino), [0, st.st_nlink, st.st_blocks * 512])
        seen[0] += 1
    return sum(size for count, nlink, size in links.values() if not shared_with_outside or nlink > count)


def spread(values: list[float], digits: int = 2) -> dict[str, Any]:
    """Median, min, max and the values themselves (``--repeat``)."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "values": [round(v, digits) for v in values],
    }


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
    process_peaks_mb: dict[str, float] = field(default_factory=dict)  # "<stage or root>/<process name>"
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

    def take_process_peaks(self) -> dict[str, float]:
        """The peak RSS of single processes so far, largest first; start over."""
        peaks, self.process_peaks_mb = self.process_peaks_mb, {}
        return {k: round(v, 1) for k, v in sorted(peaks.items(), key=lambda kv: -kv[1])}

    def _process_peak(self, label: str, proc: psutil.Process, rss: int) -> None:
        key = f"{label}/{proc.name()}"
        self.process_peaks_mb[key] = max(self.process_peaks_mb.get(key, 0.0), rss / 2**20)

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
                rss = root.memory_info().rss
                totals[name] = totals.get(name, 0) + rss
                self._process_peak(name, root, rss)
                for child in root.children(recursive=True):
                    try:
                        stage = self._stage(child, pid) if name == "pachd-lite" else None
                        key = stage or name
                        rss = child.memory_info().rss
                        totals[key] = totals.get(key, 0) + rss
                        self._process_peak(key, child, rss)
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
    started = time.time()
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / f"{DAG_ID}.py")).get_dag(DAG_ID)
    parsed = time.time()
    dr = dag.test(run_conf=conf)
    tested = time.time()
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
        # wall-clock marks, for the parent to split its wall time into phases
        "marks": {"child_main": started, "parsed": parsed, "tested": tested, "reported": time.time()},
    }
    out.write_text(json.dumps(report, default=str))
    # The run is over: spare the interpreter's final garbage collection over Airflow's heap (~2 s of
    # a quiet 1x run's wall time, up to 10 s under load; Airflow's dag processor freezes its heap too).
    import gc

    gc.freeze()
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
    started_at = time.time()
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
    ended_at = time.time()
    sampler.roots.pop("airflow", None)
    time.sleep(sampler.interval * 2)
    seen = sorted(sampler.seen_stages)
    peaks = sampler.reset()
    process_peaks = sampler.take_process_peaks()
    if code != 0 or not out.exists():  # a failure is a result: what ran, for how long, with what memory
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        print(f"{phase}: DAG run failed (exit {code}); log {log}:\n{tail}", file=sys.stderr)
        return {
            "phase": phase,
            "error": f"DAG run failed (exit {code}); log {log}",
            "wall_s": round(wall, 2),
            "load_average_before": load,
            "load_average_after": load_average(),
            "spark_stages_seen": [s for s in seen if s in ("etl", "train")],
            "peak_rss_mb": peaks,
            "peak_process_rss_mb": process_peaks,
            "pachd_disk_mb": round(disk_bytes(stack.settings.pachd_root) / 2**20, 1),
            "jobs": {
                name: [pps.JobState(j.state).name for j in jobs] for name, jobs in jobs_of(stack).items()
            },
        }
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
        "airflow_phases_s": airflow_phases(report, tasks, started_at, ended_at),
        "tasks": tasks,
        "jobs": new_jobs,
        "new_jobs_per_pipeline": new_job_count,
        "spark_stages_seen": [s for s in seen if s in ("etl", "train")],
        "peak_rss_mb": peaks,
        "peak_process_rss_mb": process_peaks,
        "pachd_disk_mb": round(disk_bytes(stack.settings.pachd_root) / 2**20, 1),
        "pachd_disk_shared_with_input_mb": round(disk_bytes(stack.settings.pachd_root, True) / 2**20, 1),
        "run_id": report["run_id"],
        "test_roc_auc": metrics.get("test_roc_auc"),
        "test_pr_auc": metrics.get("test_pr_auc"),
        "lineage": report["lineage"],
    }


def airflow_phases(
    report: dict[str, Any], tasks: dict[str, Any], started_at: float, ended_at: float
) -> dict[str, float]:
    """The DAG child's wall time split where Airflow spends it: process start and imports, DAG
    parse, dag.test until the first task starts (syncing the DAG folder, creating the run), the
    tasks (the first one includes building dag.test's in-process execution API: Cadwyn generates
    a router per API version), and the end (the report, the interpreter's exit)."""
    marks = report.get("marks") or {}
    starts = [t["start"] for t in tasks.values() if t.get("start")]
    ends = [t["end"] for t in tasks.values() if t.get("end")]
    if not marks or not starts:
        return {}
    first, last = min(starts), max(ends)
    return {
        "process_start": round(marks["child_main"] - started_at, 2),
        "parse": round(marks["parsed"] - marks["child_main"], 2),
        "until_first_task": round(first - marks["parsed"], 2),
        "tasks": round(last - first, 2),
        "after_last_task": round(ended_at - last, 2),
    }


def run_baseline(kind: str, csv: Path, work: Path, memory_cap_mb: float | None) -> dict[str, Any]:
    """One baseline script (``spark`` or ``pandas``) on ``csv``: its JSON line, wall time, peak RSS.

    A failure is a result, returned with ``error``: e.g. the pandas script at 10x needs more memory
    than the machine has; the harness stops it at ``memory_cap_mb`` rather than let the kernel's
    OOM killer choose a victim on a shared machine.
    """
    load = load_average()
    cmd = [sys.executable, str(ROOT / "benchmarks" / BASELINES[kind]), "--csv", str(csv)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result, stdout = run_measured(f"baseline-{kind}", cmd, env, work, memory_cap_mb=memory_cap_mb)
    report: dict[str, Any] = {
        "wall_s": result.wall_s,
        "peak_rss_mb": result.peak_rss_mb,
        "peak_process_rss_mb": result.peak_process_rss_mb,
        "load_average_before": load,
        "load_average_after": load_average(),
    }
    if result.killed_at_cap:
        report["error"] = f"stopped by the harness at {memory_cap_mb:.0f} MB RSS (--memory-cap-gb)"
    elif result.returncode != 0:
        log = work / f"baseline-{kind}.log"
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-3:]
        report["error"] = f"exit {result.returncode}: " + " | ".join(tail)
    else:
        report.update(json.loads(stdout.strip().splitlines()[-1]))
    return report


# -- report ----------------------------------------------------------------------------------
def _baseline_line(title: str, r: dict[str, Any] | None) -> str:
    if r is None:
        return f"{title:<27}skipped"
    head = f"{title:<27}{r['wall_s']:7.1f} s   peak RSS {r['peak_rss_mb']:6.0f} MB   "
    return head + (f"FAILED: {r['error']}" if "error" in r else f"ROC AUC {r['test_roc_auc']}")


def _phase_line(title: str, r: dict[str, Any] | None) -> str:
    if r is None:
        return f"{title:<27}not run"
    if "error" in r:
        return f"{title:<27}{r['wall_s']:7.1f} s   FAILED: {r['error']}"
    stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages_s"].items() if v is not None)
    return f"{title:<27}{r['wall_s']:7.1f} s   ROC AUC {r.get('test_roc_auc')}   stages {stages}"


def print_table(summary: dict[str, Any]) -> None:
    print()
    print(
        f"rows {summary['rows']:,} (scale {summary['scale']:g})   load average at start {summary['load_average_start']}"
    )
    print(_baseline_line("(A) plain PySpark script", summary.get("baseline")))
    print(_baseline_line("(B) pandas + scikit-learn", summary.get("baseline_pandas")))
    b = summary.get("full_run")
    print(_phase_line("(b) DAG, day 1", b))
    if b and b.get("airflow_phases_s"):
        print("    Airflow s: " + ", ".join(f"{k} {v:.1f}" for k, v in b["airflow_phases_s"].items()))
    if b:
        print("    peak RSS MB per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in b["peak_rss_mb"].items()))
        top = list(b["peak_process_rss_mb"].items())[:4]
        print("    largest processes MB: " + ", ".join(f"{k} {v:.0f}" for k, v in top))
    disk = summary.get("pachd_disk", {})
    if "after_full_run_mb" in disk:
        print(
            f"    pachd-lite disk {disk['after_full_run_mb']:.0f} MB for {disk['input_mb']:.0f} MB of CSV "
            f"({disk['ratio_full_run']:.2f}x); after day 2 {disk.get('after_second_day_mb', float('nan')):.0f} MB"
        )
        print(
            f"      peak during day 1 (with sandboxes) {disk.get('peak_full_run_mb', float('nan')):.0f} MB; after it: "
            + ", ".join(f"{k} {v:.0f}" for k, v in disk.get("breakdown_after_full_run_mb", {}).items())
        )
    for key, title in (("second_day", "(c) second day (+1/30)"), ("rerun", "(d) rerun, no new data")):
        r = summary.get(key)
        print(_phase_line(title, r))
        if r and "error" not in r:
            for name, job in r["jobs"].items():
                print(
                    f"      {name:<11} processed {job['datums_processed']:>3}, "
                    f"skipped {job['datums_skipped']:>3} of {job['datums_total']:>3}"
                )
            if not r["jobs"]:
                print("      no pipeline job started")
    if "second_day_non_training_ratio" in summary:
        print(f"(c) non-training stages vs full run: {summary['second_day_non_training_ratio']:.3f}")
    if _ok(summary.get("rerun")):
        rerun = summary["rerun"]
        print(
            f"(d) Spark jobs started: {rerun['spark_stages_seen'] or 'none'}; new jobs: {list(rerun['jobs']) or 'none'}"
        )
    if summary.get("ratios"):
        print("ratios (medians): " + ", ".join(f"{k} {v:.2f}" for k, v in summary["ratios"].items()))
    mem = summary["max_process_rss_mb"]
    print(
        f"largest process of the DAG: {mem['process']} {mem['mb']:.0f} MB (target <= {MEMORY_TARGET_MB} MB)"
    )
    if "vs_1x" in summary:
        print(f"DAG wall vs 1x: {summary['vs_1x']['ratio']:.2f}x ({summary['vs_1x']['source']})")
    if summary["repeat"] > 1:
        print(f"medians of {summary['repeat']} interleaved repeats (min-max):")
        for name, m in summary["medians"].items():
            digits = 4 if name.endswith("auc") else 2
            print(
                f"      {name:<24}{m['median']:8.{digits}f}   ({m['min']:.{digits}f}-{m['max']:.{digits}f})"
            )
    for failure in summary["failures"]:
        print(f"FAILED: {failure}")


def non_training_s(phase: dict[str, Any]) -> float:
    s = phase["stages_s"]
    return sum(s.get(k) or 0.0 for k in ("push", "split", "etl"))


def specs_dir(base: Path, etl_engine: str | None) -> Path | None:
    """A copy of pachyderm_specs/ with etl's ETL_ENGINE set, for ``--etl-engine`` (None: the repo's)."""
    if not etl_engine:
        return None
    folder = base / "specs"
    shutil.copytree(ROOT / "pachyderm_specs", folder)
    etl = json.loads((folder / "etl.json").read_text())
    etl["transform"]["env"]["ETL_ENGINE"] = etl_engine
    (folder / "etl.json").write_text(json.dumps(etl, indent=2))
    return folder


def run_dag(
    base: Path, sampler: RssSampler, day1: Path, day2: Path, log_dir: Path, specs: Path | None
) -> dict[str, Any]:
    """(C): a fresh stack, the three phases, pachd-lite's disk use; the stack is stopped after."""
    stack = None
    disk = None
    result: dict[str, Any] = {}
    try:
        started = time.monotonic()
        stack = start_stack(base)
        disk = DiskSampler(stack.settings.pachd_root).start()
        if specs is not None:
            stack.env["PACHFLOW_SPECS"] = str(specs)
        result["stack_start_s"] = round(time.monotonic() - started, 2)
        sampler.roots.update({"pachd-lite": stack.pachd_pid, "mlflow": stack.mlflow_pid})
        sampler.reset()
        sampler.take_process_peaks()
        common = {"mlflow_experiment": "bench-full-pipeline", "model_name": "bench-fraud-detector"}
        phases = (
            ("full_run", "(b) DAG, day 1 from an empty state", [day1]),
            ("second_day", "(c) DAG, days 1-2 (second day added)", [day1, day2]),
            ("rerun", "(d) DAG, days 1-2 again (no new data)", [day1, day2]),
        )
        for key, title, files in phases:
            print(f"{title} ...", flush=True)
            source = source_dir(base, key, files)
            result[key] = run_dag_phase(stack, sampler, {**common, "source": str(source)}, log_dir, key)
            result[key]["pachd_disk_peak_mb"] = disk.take_peak_mb()  # root + sandboxes, during the run
            result[key]["pachd_disk_breakdown_mb"] = disk_breakdown(stack.settings.pachd_root)
            if "error" in result[key]:
                break
            print(f"    {result[key]['wall_s']:.1f} s  {result[key]['stages_s']}", flush=True)
    finally:
        if disk is not None:
            disk.stop()
        if stack is not None:
            from pachflow_tools.local.stack import down

            down(stack.settings)
            sampler.roots.clear()
    input_mb = day1.stat().st_size / 2**20
    result["pachd_disk"] = {"input_mb": round(input_mb, 1)}
    if "full_run" in result:
        disk = result["full_run"]["pachd_disk_mb"]
        result["pachd_disk"].update(
            after_full_run_mb=disk,
            ratio_full_run=round(disk / input_mb, 3),
            hard_linked_input_mb=result["full_run"].get("pachd_disk_shared_with_input_mb"),
            peak_full_run_mb=result["full_run"]["pachd_disk_peak_mb"],
            breakdown_after_full_run_mb=result["full_run"]["pachd_disk_breakdown_mb"],
        )
    if "second_day" in result:
        result["pachd_disk"].update(
            after_second_day_mb=result["second_day"]["pachd_disk_mb"],
            second_day_input_mb=round((day1.stat().st_size + day2.stat().st_size) / 2**20, 1),
        )
    return result


def largest_process(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """The single process with the highest peak RSS over ``phases`` (pachd-lite and MLflow included)."""
    name, mb = max(
        ((f"{p['phase']}: {k}", v) for p in phases for k, v in p["peak_process_rss_mb"].items()),
        key=lambda kv: kv[1],
        default=("none", 0.0),
    )
    return {"process": name, "mb": mb, "within_target": mb <= MEMORY_TARGET_MB}


def one_x_wall() -> tuple[float, str] | None:
    """The 1x DAG wall time from benchmarks/results/latest.json (median if repeated), to compare with."""
    latest = RESULTS / "latest.json"
    if not latest.exists():
        return None
    data = json.loads(latest.read_text())
    if data.get("rows") != PAYSIM_ROWS:
        return None
    median = data.get("medians", {}).get("dag_full_run_s", {}).get("median")
    wall = median or data["full_run"]["wall_s"]
    return (
        wall,
        f"benchmarks/results/latest.json, {data.get('started_at')}, load {data.get('load_average_start')}",
    )


def _ok(phase: dict[str, Any] | None) -> bool:
    return phase is not None and "error" not in phase


def summarise(runs: list[dict[str, Any]], baselines: list[str], rows: int) -> dict[str, Any]:
    """The first repeat's records under the keys earlier results used, medians and ratios over all."""
    first = runs[0]
    summary: dict[str, Any] = {"stack_start_s": first.get("stack_start_s")}
    if "baseline_spark" in first:
        summary["baseline"] = first["baseline_spark"]
    if "baseline_pandas" in first:
        summary["baseline_pandas"] = first["baseline_pandas"]
    for key in ("full_run", "second_day", "rerun", "pachd_disk"):
        if key in first:
            summary[key] = first[key]
    if len(runs) > 1:
        summary["repeats"] = runs
    series = {
        f"dag_{phase}_s": [r[phase]["wall_s"] for r in runs if _ok(r.get(phase))]
        for phase in ("full_run", "second_day", "rerun")
    }
    series["dag_test_roc_auc"] = [
        r["full_run"]["test_roc_auc"]
        for r in runs
        if _ok(r.get("full_run")) and r["full_run"]["test_roc_auc"]
    ]
    for kind in baselines:
        done = [r[f"baseline_{kind}"] for r in runs if "error" not in r[f"baseline_{kind}"]]
        series[f"baseline_{kind}_s"] = [r["wall_s"] for r in done]
        series[f"baseline_{kind}_roc_auc"] = [r["test_roc_auc"] for r in done]
    medians = {k: spread(v, 4 if k.endswith("auc") else 2) for k, v in series.items() if v}
    summary["medians"] = medians
    summary["failures"] = [
        f"repeat {i + 1} {key}: {r[key]['error']}"
        for i, r in enumerate(runs)
        for key in ("baseline_spark", "baseline_pandas", "full_run", "second_day", "rerun")
        if key in r and "error" in r[key]
    ]
    if "dag_full_run_s" in medians:
        dag = medians["dag_full_run_s"]["median"]
        summary["ratios"] = {
            f"DAG/{kind}": round(dag / medians[f"baseline_{kind}_s"]["median"], 3)
            for kind in baselines
            if f"baseline_{kind}_s" in medians
        }
        if "DAG/spark" in summary["ratios"]:
            summary["ratio_b_to_a"] = summary["ratios"]["DAG/spark"]
        reference = one_x_wall() if rows != PAYSIM_ROWS else None
        if reference:
            summary["vs_1x"] = {
                "one_x_wall_s": reference[0],
                "ratio": round(dag / reference[0], 2),
                "source": reference[1],
            }
    pairs = [r for r in runs if _ok(r.get("full_run")) and _ok(r.get("second_day"))]
    if pairs:
        summary["second_day_non_training_ratio"] = round(
            statistics.median(
                non_training_s(r["second_day"]) / max(non_training_s(r["full_run"]), 1e-9) for r in pairs
            ),
            3,
        )
    summary["max_process_rss_mb"] = largest_process(
        [r[k] for r in runs for k in ("full_run", "second_day", "rerun") if k in r]
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiple of PaySim's 6,362,620 rows (e.g. 10, 0.1)"
    )
    parser.add_argument("--rows", type=int, default=None, help="rows of day 1 (overrides --scale)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows: smoke-test the harness")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved repeats (A B C A B C ...)")
    parser.add_argument("--skip-baseline", action="store_true", help="run neither baseline (the DAG only)")
    parser.add_argument("--skip-pandas", action="store_true", help="run the PySpark baseline but not pandas")
    parser.add_argument(
        "--memory-cap-gb",
        type=float,
        default=12.0,
        help="stop a baseline whose RSS exceeds this (reported as its memory error); default 12",
    )
    parser.add_argument(
        "--etl-engine", choices=("arrow", "spark"), default=None, help="override etl's ETL_ENGINE"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp state dir for inspection")
    parser.add_argument("--output", type=Path, default=None, help="result JSON (default: by scale)")
    parser.add_argument("--dag-child", help=argparse.SUPPRESS)
    parser.add_argument("--dag-child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dag_child:
        return dag_child(json.loads(args.dag_child), args.dag_child_out)
    if args.repeat < 1 or args.scale <= 0:
        parser.error("--repeat must be >= 1 and --scale > 0")

    rows = args.rows or (QUICK_ROWS if args.quick else round(PAYSIM_ROWS * args.scale))
    scale = rows / PAYSIM_ROWS
    default_name = (
        "quick.json" if args.quick else "latest.json" if rows == PAYSIM_ROWS else f"scale-{scale:g}.json"
    )
    if args.etl_engine:
        default_name = default_name.replace(".json", f"-etl-{args.etl_engine}.json")
    output = args.output or RESULTS / default_name
    load_start = load_average()
    CACHE.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="pachflow-bench-", dir=CACHE))
    log_dir = base / "logs"
    log_dir.mkdir(parents=True)
    print(f"state and logs: {base}", flush=True)
    day1, day2, generated = ensure_data(rows, log_dir)
    summary: dict[str, Any] = {
        "rows": rows,
        "scale": round(scale, 4),
        "second_day_rows": rows // 30,
        "command": " ".join([".venv/bin/python", "benchmarks/full_pipeline.py", *(argv or sys.argv[1:])]),
        "cpus": os.cpu_count(),
        "memory_total_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_start": load_start,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeat": args.repeat,
        "etl_engine": args.etl_engine or "spec default",
        "input_csv_mb": round(day1.stat().st_size / 2**20, 1),
    }
    if generated:
        summary["generated"] = generated
    baselines = [] if args.skip_baseline else ["spark"] if args.skip_pandas else ["spark", "pandas"]
    cap = args.memory_cap_gb * 1024
    specs = specs_dir(base, args.etl_engine)
    runs: list[dict[str, Any]] = []
    sampler = RssSampler().start()
    try:
        for i in range(args.repeat):
            run: dict[str, Any] = {}
            tag = f" [{i + 1}/{args.repeat}]" if args.repeat > 1 else ""
            for kind in baselines:
                print(f"({'A' if kind == 'spark' else 'B'}) baseline {kind}{tag} ...", flush=True)
                run[f"baseline_{kind}"] = r = run_baseline(kind, day1, log_dir, cap)
                print(
                    f"    {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB {r.get('error', '')}",
                    flush=True,
                )
            run.update(run_dag(base / f"run-{i + 1}", sampler, day1, day2, log_dir, specs))
            if not args.keep:
                shutil.rmtree(base / f"run-{i + 1}" / "state", ignore_errors=True)
            runs.append(run)
    finally:
        sampler.stop()
    summary.update(summarise(runs, baselines, rows))
    summary["load_average_end"] = load_average()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print_table(summary)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
