from __future__ import annotations

import socket
import time

from spark_jobs.lineage_tags import lineage_tags, provenance_from_pachd
from spark_jobs.worker_env import pachd_address, pachyderm_context

WORKER_ENV = {
    "PPS_PIPELINE_NAME": "ml_train",
    "PPS_PROJECT_NAME": "default",
    "PACH_JOB_ID": "aaaa",
    "PACH_OUTPUT_COMMIT_ID": "aaaa",
    "etl_COMMIT": "bbbb",
    "PACHD_PEER_SERVICE_HOST": "10.0.0.5",
    "PACHD_PEER_SERVICE_PORT": "30653",
}


def test_tags_from_worker_env(monkeypatch) -> None:
    monkeypatch.setenv("PACHFLOW_AIRFLOW_DAG_ID", "fraud_detection")
    monkeypatch.setenv("PACHFLOW_AIRFLOW_RUN_ID", "scheduled__2026")
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    monkeypatch.delenv("AIRFLOW_CTX_DAG_RUN_ID", raising=False)
    ctx = pachyderm_context(["etl"], WORKER_ENV)
    tags = lineage_tags(ctx, {"split_data": "cccc", "raw_data": "dddd"})
    assert tags == {
        "pachyderm.address": "10.0.0.5:30653",
        "pachyderm.project": "default",
        "pachyderm.pipeline": "ml_train",
        "pachyderm.job": "aaaa",
        "pachyderm.commit": "aaaa",
        "pachyderm.provenance.etl": "bbbb",
        "pachyderm.provenance.split_data": "cccc",
        "pachyderm.provenance.raw_data": "dddd",
        "airflow.dag_id": "fraud_detection",
        "airflow.run_id": "scheduled__2026",
    }


def test_outside_pachyderm_there_are_no_pachyderm_tags(monkeypatch) -> None:
    for var in (
        "AIRFLOW_CTX_DAG_ID",
        "AIRFLOW_CTX_DAG_RUN_ID",
        "PACHFLOW_AIRFLOW_DAG_ID",
        "PACHFLOW_AIRFLOW_RUN_ID",
    ):
        monkeypatch.delenv(var, raising=False)
    ctx = pachyderm_context(["etl"], {})
    assert not ctx.in_pipeline and lineage_tags(ctx) == {}
    assert pachd_address({"PACHD_ADDRESS": "grpc://pachd:30650"}) == "pachd:30650"


def test_unreachable_pachd_skips_provenance_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = pachyderm_context(
        ["etl"], {**WORKER_ENV, "PACHD_PEER_SERVICE_HOST": "127.0.0.1", "PACHD_PEER_SERVICE_PORT": str(port)}
    )
    started = time.monotonic()
    assert provenance_from_pachd(ctx) == {}
    assert time.monotonic() - started < 5
