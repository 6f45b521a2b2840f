"""Soak: N consecutive daily ``fraud_detection`` runs on the embedded default (pachd-lite + MLflow).

Each day a new generated CSV joins the source folder and the real DAG runs (Airflow
``dag.test()``, real pachd-lite, real MLflow server, real Spark). Per run it reports the wall
time, pachd-lite's RSS, the disk used by its root (blobs + SQLite), and whether the run's lineage
resolves both ways (``pachflow lineage --run-id`` and ``--commit raw_data@...``) and agrees.

Writes benchmarks/results/soak.json. Usage: python benchmarks/soak.py [--runs 30] [--rows-per-day 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _airflow_env(base: Path) -> None:
    """An isolated Airflow home (must be set before Airflow is imported)."""
    home = base / "airflow"
    home.mkdir()
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
    )


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _lineage_json(argv: list[str]) -> tuple[int, object]:
    from pachflow_tools import lineage_cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = lineage_cli.main(argv)
    try:
        return code, json.loads(out.getvalue())
    except json.JSONDecodeError:
        return code, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="consecutive daily runs")
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="pachflow-soak-"))
    _airflow_env(base)
    import psutil
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    from spark_jobs.generate import GenerateConfig, generate
    from tests.fixtures.mlflow_server import MlflowServer
    from tests.fixtures.pachd import PachdProcess

    db.resetdb()
    pachd = PachdProcess(base / "pachd").start()
    mlflow = MlflowServer(base / "mlflow").start()
    os.environ["AIRFLOW_CONN_PACHYDERM_DEFAULT"] = json.dumps(
        {"conn_type": "pachyderm", "host": pachd.host, "port": pachd.port, "extra": {"project": "default"}}
    )
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": mlflow.port, "schema": "http"}
    )
    days = generate(
        GenerateConfig(
            rows=args.rows_per_day * args.runs,
            customers=max(500, args.rows_per_day // 4),
            days=args.runs,
            seed=21,
            fraud_rate=0.03,
        ),
        base / "generated",
    )
    source = base / "source"
    source.mkdir()
    dag = DagBag(dag_folder=str(ROOT / "dags" / "fraud_detection.py")).get_dag("fraud_detection")
    conn = ["--pachd-address", pachd.address, "--tracking-uri", mlflow.tracking_uri, "--json"]
    rows = []
    try:
        for i, day in enumerate(days, start=1):
            shutil.copy(day, source)
            started = time.perf_counter()
            dr = dag.test(
                run_conf={"source": str(source / "*.csv"), "mlflow_experiment": "soak", "max_depth": 4}
            )
            wall = time.perf_counter() - started
            rec = (
                dr.get_task_instance("record_lineage").xcom_pull(task_ids="record_lineage", key="lineage")
                or {}
            )
            forward_ok = backward_ok = False
            if rec.get("mlflow_run_id"):
                code, forward = _lineage_json(["--run-id", rec["mlflow_run_id"], *conn])
                forward_ok = code == 0 and forward["commits"] == rec["commits"] and forward["consistent"]
                code, backward = _lineage_json(["--commit", f"raw_data@{rec['commit_set']}", *conn])
                backward_ok = code == 0 and [r["mlflow_run_id"] for r in backward] == [rec["mlflow_run_id"]]
            row = {
                "run": i,
                "state": str(dr.state),
                "wall_s": round(wall, 1),
                "pachd_rss_mib": round(psutil.Process(pachd.pid).memory_info().rss / 2**20, 1),
                "pachd_disk_mib": round(_disk_bytes(pachd.root) / 2**20, 1),
                "lineage_forward": forward_ok,
                "lineage_backward": backward_ok,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        mlflow.stop()
        pachd.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    out = ROOT / "benchmarks" / "results" / "soak.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"runs": rows, "rows_per_day": args.rows_per_day}, indent=2) + "\n")
    print(f"{'run':>4} {'state':>8} {'wall s':>7} {'RSS MiB':>8} {'disk MiB':>9} lineage")
    for r in rows:
        both = "ok" if r["lineage_forward"] and r["lineage_backward"] else "BROKEN"
        print(
            f"{r['run']:>4} {r['state']:>8} {r['wall_s']:>7} {r['pachd_rss_mib']:>8} {r['pachd_disk_mib']:>9} {both}"
        )
    ok = all(r["state"] == "success" and r["lineage_forward"] and r["lineage_backward"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
