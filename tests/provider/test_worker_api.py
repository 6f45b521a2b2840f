"""``pachflow.worker``: the training side of the lineage contract, in a real pachd-lite pipeline and alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from pachflow.exceptions import ConfigurationError
from pachflow.worker import (
    PachydermContext,
    input_commits,
    pachyderm_context,
    pachyderm_run,
    provenance_from_pachd,
    resolve_output_dir,
)
from tests.fixtures.pachd import unique_name
from tests.provider.worker_specs import build_join_graph, list_paths, read_file

WORKER_ENV = {
    "PPS_PIPELINE_NAME": "train",
    "PPS_PROJECT_NAME": "research",
    "PPS_SPEC_COMMIT": "eeee",
    "PACH_JOB_ID": "aaaa",
    "PACH_OUTPUT_COMMIT_ID": "aaaa",
    "events": "/pfs/events/a.csv",
    "events_COMMIT": "bbbb",
    "labels": "/pfs/labels/a.csv",
    "labels_COMMIT": "cccc",
    "NOT_AN_INPUT_COMMIT": "dddd",
    "PACHD_PEER_SERVICE_HOST": "10.0.0.5",
    "PACHD_PEER_SERVICE_PORT": "30653",
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_importing_the_worker_module_does_not_import_airflow():
    code = (
        "import sys, pachflow.worker, pachflow.contract; "
        "loaded = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]; "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_context_reads_every_input_from_the_worker_env():
    ctx = pachyderm_context(env=WORKER_ENV)
    assert (ctx.pipeline, ctx.project, ctx.job_id, ctx.output_commit) == ("train", "research", "aaaa", "aaaa")
    assert ctx.address == "10.0.0.5:30653" and ctx.in_pipeline
    # PPS_SPEC_COMMIT and a *_COMMIT variable without its datum variable are not inputs
    assert ctx.input_commits == {"events": "bbbb", "labels": "cccc"}
    assert input_commits(WORKER_ENV, ["labels"]) == {"labels": "cccc"}
    assert not pachyderm_context(env={}).in_pipeline


def test_unreachable_pachd_gives_no_provenance_quickly():
    ctx = pachyderm_context(
        env={
            **WORKER_ENV,
            "PACHD_PEER_SERVICE_HOST": "127.0.0.1",
            "PACHD_PEER_SERVICE_PORT": str(closed_port()),
        }
    )
    started = time.monotonic()
    assert provenance_from_pachd(ctx) is None
    assert time.monotonic() - started < 5


def test_pfs_out_is_found_in_a_sandbox_working_directory(tmp_path, monkeypatch):
    (tmp_path / "pfs" / "out").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    if not os.path.exists("/pfs/out"):
        assert resolve_output_dir("/pfs/out") == tmp_path / "pfs" / "out"
    assert resolve_output_dir(tmp_path / "elsewhere") == tmp_path / "elsewhere"


def test_no_experiment_is_an_error_naming_both_ways_to_give_it(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    with pytest.raises(ConfigurationError, match=r"experiment=.*MLFLOW_EXPERIMENT_NAME"):
        with pachyderm_run(output_dir=tmp_path, tracking_uri="http://127.0.0.1:1"):
            pass


def test_an_exception_ends_the_run_failed_and_writes_nothing(mlflow_server, tmp_path, monkeypatch):
    """Outside pachd's reach the direct inputs' commits are the provenance tags."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", unique_name("exp"))
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    monkeypatch.delenv("AIRFLOW_CTX_DAG_RUN_ID", raising=False)
    ctx = PachydermContext(
        pipeline="train",
        project="research",
        job_id="aaaa",
        output_commit="aaaa",
        address=f"127.0.0.1:{closed_port()}",
        input_commits={"events": "bbbb", "labels": "cccc"},
    )
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with pachyderm_run(output_dir=out, tracking_uri=mlflow_server.tracking_uri, context=ctx) as run:
            run_id = run.info.run_id
            raise RuntimeError("boom")
    assert not out.exists()
    client = MlflowClient(mlflow_server.tracking_uri)
    failed = client.get_run(run_id)
    assert failed.info.status == "FAILED" and failed.info.run_name == "train@aaaa"
    tags = failed.data.tags
    assert tags["pachyderm.provenance.events"] == "bbbb" and tags["pachyderm.provenance.labels"] == "cccc"
    assert tags["pachyderm.project"] == "research" and tags["pachyderm.commit"] == "aaaa"
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the process is not left pointing at this server


def test_pachyderm_run_in_a_pachd_lite_pipeline_records_the_run_and_every_input(pachd_server, mlflow_server):
    from mlflow import MlflowClient

    client = pachd_server.client()
    g = build_join_graph(client, mlflow_server.tracking_uri, unique_name("exp"))
    record = json.loads(read_file(client, g.project, g.train, g.train_commit, "/mlflow_run.json"))
    run_id = record["run_id"]
    assert list_paths(client, g.project, g.train, g.train_commit) == {f"/{run_id}", "/mlflow_run.json"}
    assert record["tracking_uri"] == mlflow_server.tracking_uri and record["metrics"] == {"rows": 8.0}
    assert record["model_uri"] == f"runs:/{run_id}/model"

    run = MlflowClient(mlflow_server.tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == f"{g.train}@{g.train_commit}"
    assert record["experiment_id"] == run.info.experiment_id
    tags = run.data.tags
    assert (tags["pachyderm.project"], tags["pachyderm.pipeline"]) == (g.project, g.train)
    assert tags["pachyderm.job"] == tags["pachyderm.commit"] == g.train_commit
    # every upstream repo, read from pachd: both joined inputs and the join's output
    provenance = {k.rpartition(".")[2]: v for k, v in tags.items() if k.startswith("pachyderm.provenance.")}
    assert provenance.pop(g.events) == g.events_commit and provenance.pop(g.labels) == g.labels_commit
    assert list(provenance) == [g.features]
