"""How long the Lineage view of a fraud-shaped training takes to build, as JSON and as HTML.

A fresh pachd-lite and MLflow server are started locally; the fraud DAG's graph is rebuilt without
Spark (``raw_data`` -> ``split_data`` -> ``etl`` -> ``ml_train``: three copy pipelines, then a
trainer logging an MLflow run through ``pachflow.worker``), and the training is recorded as the
DAG's ``record_lineage`` task does (model version + alias). Then the work of one request of the
plugin is timed, the same calls the api-server makes (Airflow's authentication and HTTP excluded):

- json: find the record (by MLflow run id, as the CLI does; a DAG run reads it from one XCom
  instead), enrich every node live from pachd and MLflow, ``json.dumps``;
- html: the same, plus the SVG graph and the table of nodes (``render.record_html`` in a page).

Writes benchmarks/results/lineage_view.json. Usage: python benchmarks/lineage_view.py [--repeat 20] [--profile]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "plugins"))

PROJECT = "default"
CHAIN = ("raw_data", "split_data", "etl")
TRAIN = "ml_train"
COPY = "import shutil; shutil.copytree('/pfs/{inp}', '/pfs/out', dirs_exist_ok=True)"


def build_fraud_shaped_graph(client, tracking_uri: str, experiment: str) -> str:
    """Repos and pipelines of the fraud DAG, one push, the training finished; returns the commit set."""
    from pachyderm_sdk.api import pfs, pps

    from tests.provider.worker_specs import WORKER_TRAIN, _pipeline, _push

    client.pfs.create_repo(repo=pfs.Repo(name=CHAIN[0], type="user", project=pfs.Project(name=PROJECT)))
    for inp, out in zip(CHAIN, (*CHAIN[1:], TRAIN), strict=True):
        cmd = WORKER_TRAIN.format(inp=inp) if out == TRAIN else COPY.format(inp=inp)
        env = (
            {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_EXPERIMENT_NAME": experiment}
            if out == TRAIN
            else {}
        )
        _pipeline(
            client,
            {
                "pipeline": {"name": out, "project": {"name": PROJECT}},
                "transform": {"cmd": ["python3", "-c", cmd], "image": "bench", "env": env},
                "input": {"pfs": {"project": PROJECT, "repo": inp, "glob": "/*" if out == CHAIN[1] else "/"}},
                "datum_tries": 1,
            },
        )
    rows = "".join(f"{i},PAYMENT,{i * 3.5},C{i % 97},0\n" for i in range(2000))
    files = {f"/2026-01-0{d}.csv": "step,type,amount,nameOrig,isFraud\n" + rows for d in (1, 2)}
    commit_set = _push(client, PROJECT, CHAIN[0], files)
    train = pfs.Commit(
        repo=pfs.Repo(name=TRAIN, type="user", project=pfs.Project(name=PROJECT)), id=commit_set
    )
    client.pfs.wait_commit(train)
    job = client.pps.inspect_job(
        job=pps.Job(pipeline=pps.Pipeline(name=TRAIN, project=pfs.Project(name=PROJECT)), id=commit_set),
        wait=True,
    )
    if job.state != pps.JobState.JOB_SUCCESS:
        raise RuntimeError(f"training job {commit_set}: {job.state} {job.reason}")
    return commit_set


def timed(fns: dict, repeat: int) -> dict[str, dict[str, float]]:
    """Seconds per call of each function, the functions taking turns (so a slow phase of the
    servers hits them all alike), after one warm-up call each (imports, gRPC channel, HTTP session)."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {
        name: {
            "median_s": round(statistics.median(s), 4),
            "max_s": round(max(s), 4),
            "min_s": round(min(s), 4),
        }
        for name, s in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per format")
    parser.add_argument("--profile", action="store_true", help="print where one HTML request spends its time")
    args = parser.parse_args(argv)

    from mlflow import MlflowClient

    from pachflow.lineage import record_lineage
    from pachflow.ui import render
    from pachflow.ui.graph import Services, enrich, find_records
    from pachflow.ui.queries import lookup
    from tests.fixtures.mlflow_server import MlflowServer
    from tests.fixtures.pachd import PachdProcess

    base = Path(tempfile.mkdtemp(prefix="pachflow-bench-lineage-"))
    pachd = PachdProcess(base / "pachd").start()
    mlflow_server = MlflowServer(base / "mlflow").start()
    try:
        client = pachd.client()
        uri = mlflow_server.tracking_uri
        mlflow = MlflowClient(uri)
        commit_set = build_fraud_shaped_graph(client, uri, "bench-lineage-view")
        rec = record_lineage(
            client, mlflow, project=PROJECT, address=pachd.address, tracking_uri=uri, commit_set=commit_set,
            dag_id="bench", airflow_run_id="bench-1", train_repo=TRAIN, model_name="bench-fraud-detector",
            alias="champion",
        )  # fmt: skip
        services = Services(
            mlflow=mlflow, client=client, project=PROJECT, tracking_uri=uri,
            node_page=lambda node_id: f"/pachflow/lineage?commit={node_id}",
        )  # fmt: skip
        q = lookup(run_id_=rec["mlflow_run_id"])

        def as_json() -> str:
            return json.dumps({"records": [enrich(services, r) for r in find_records(services, q)]})

        def as_html() -> str:
            records = [enrich(services, r) for r in find_records(services, q)]
            return render.page("Lineage", "".join(render.record_html(r, rollback_url="/rb") for r in records))

        html = as_html()
        missing = [n["id"] for n in rec["graph"]["nodes"] if f"data-id='{n['id']}'" not in html]
        if missing:
            raise RuntimeError(f"the page lacks nodes {missing}")
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(as_html)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        results = {
            "nodes": len(rec["graph"]["nodes"]),
            "edges": len(rec["graph"]["edges"]),
            "repeat": args.repeat,
            **timed({"json": as_json, "html": as_html}, args.repeat),
        }
    finally:
        mlflow_server.stop()
        pachd.stop()
        shutil.rmtree(base, ignore_errors=True)
    out = ROOT / "benchmarks" / "results" / "lineage_view.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
