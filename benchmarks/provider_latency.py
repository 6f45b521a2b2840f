"""Provider timings against a fresh pachd-lite: upload throughput, skip check, trigger wake-up, fail-fast.

- put: N files of SIZE MiB pushed in one commit (``pachflow.upload.push_files``), MiB/s;
- skip check: the same push again (content compared with the head, no commit);
- trigger wake-up: time from FinishCommit to the trigger's event (server-side wait, no poll);
- fail-fast: time from pushing data to a pipeline whose datum fails, to the trigger's "failed" event.

Writes benchmarks/results/provider_latency.json. Usage: python benchmarks/provider_latency.py [--mib 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def first_event(trigger) -> dict:
    async def run():
        gen = trigger.run()
        event = await gen.__anext__()
        await gen.aclose()
        return event.payload

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64, help="total MiB to upload (split over 4 files)")
    args = parser.parse_args(argv)

    from pachyderm_sdk.api import pfs

    from pachflow.triggers.pachyderm import PachydermCommitTrigger
    from pachflow.upload import plan_upload, push_files
    from tests.fixtures.pachd import PachdProcess

    base = Path(tempfile.mkdtemp(prefix="pachflow-bench-"))
    server = PachdProcess(base / "pachd").start()
    os.environ["AIRFLOW_CONN_PACHYDERM_DEFAULT"] = json.dumps(
        {"conn_type": "pachyderm", "host": server.host, "port": server.port}
    )
    results: dict[str, float] = {}
    try:
        client = server.client()
        data = base / "data"
        data.mkdir()
        per_file = args.mib * 1024 * 1024 // 4
        for i in range(4):
            (data / f"part-{i}.csv").write_bytes(os.urandom(per_file))
        repo = pfs.Repo(name="bench", type="user", project=pfs.Project(name="default"))
        client.pfs.create_repo(repo=repo)
        branch = pfs.Branch(repo=repo, name="master")
        items = plan_upload(str(data))

        t0 = time.perf_counter()
        push_files(client, branch, items)
        put_s = time.perf_counter() - t0
        results["put_seconds"] = round(put_s, 3)
        results["put_mib_per_s"] = round(args.mib / put_s, 1)

        t0 = time.perf_counter()
        again = push_files(client, branch, items)
        results["skip_check_seconds"] = round(time.perf_counter() - t0, 3)
        assert again.commit_id is None

        commit = client.pfs.start_commit(branch=branch)
        finished_at: list[float] = []

        def finish() -> None:
            time.sleep(1.0)
            finished_at.append(time.perf_counter())
            client.pfs.finish_commit(commit=commit)

        threading.Thread(target=finish).start()
        event = first_event(
            PachydermCommitTrigger(
                repo="bench", commit_id=commit.id, pipeline=False, timeout_s=60, progress_interval=5
            )
        )
        results["trigger_wakeup_ms"] = round((time.perf_counter() - finished_at[0]) * 1000, 1)
        assert event["status"] == "success", event

        spec = {
            "pipeline": {"name": "fails", "project": {"name": "default"}},
            "transform": {"cmd": ["python3", "-c", "import sys; print('boom'); sys.exit(3)"]},
            "input": {"pfs": {"repo": "bench", "glob": "/*"}},
            "datum_tries": 1,
        }
        client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
        t0 = time.perf_counter()
        with client.pfs.commit(branch=branch) as c:
            c.put_file_from_bytes("/new.csv", b"1\n")
        event = first_event(
            PachydermCommitTrigger(repo="fails", commit_id=c.id, pipeline=True, timeout_s=120)
        )
        results["fail_fast_seconds"] = round(time.perf_counter() - t0, 2)
        assert event["status"] == "failed", event
    finally:
        server.stop()
    out = ROOT / "benchmarks" / "results" / "provider_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"mib": args.mib, **results}, indent=2) + "\n")
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
