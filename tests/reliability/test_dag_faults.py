"""Faults seen through the real ``fraud_detection`` DAG (Airflow ``dag.test()``, real pachd-lite, real Spark).

- an unusable raw file: the split job fails and the ``wait_split_data`` sensor fails with the
  job's reason, which names the file and the problem; nothing after it runs;
- MLflow down when training starts: ``wait_ml_train`` fails with "MLflow at <uri> is
  unreachable", in bounded time, and no lineage is recorded;
- ``kill -9`` pachd-lite while training runs, and right after the training commit (before
  lineage is recorded); it restarts on the same root after ``DOWN_S``: the run completes, the raw
  commit reads back byte-identical, XCom / MLflow tags / commit metadata agree, one model
  version and one lineage pair; user code orphaned by the kill is stopped when pachd-lite restarts;
- two runs for different days started together: each run's lineage points at its own commit set.
Each test gets its own empty pachd-lite; the connections come from ``AIRFLOW_CONN_*``.
"""

from __future__ import annotations

import time

import pytest

from tests.fixtures.airflow import ROOT, airflow_connections, mlflow_conn, pachyderm_conn
from tests.fixtures.pachd import free_port, unique_name

pytestmark = [pytest.mark.e2e]

# A pachd restart takes seconds (a pod restart far longer); the DAG must ride it out.
DOWN_S = 8.0
BOUND_S = 300  # MLflow's default HTTP retries alone would take minutes; the run must not hang on them


@pytest.fixture
def stack(pachd_factory, airflow_db):
    from pachflow_tools.javacheck import MIN_JAVA, java_major_version

    major = java_major_version()
    if major is None or major < MIN_JAVA:
        pytest.skip(f"the DAG runs Spark jobs: needs Java {MIN_JAVA}+ (found {major})")
    return pachd_factory()


def _run(conf: dict):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / "fraud_detection.py")).get_dag("fraud_detection")
    return dag.test(run_conf=conf)


def _states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _failed_run(stack, conf: dict, mlflow_uri: str, capsys) -> tuple[dict[str, str], str]:
    """Run the DAG against ``stack`` and ``mlflow_uri``; it must fail before recording lineage.

    Returns the task states and everything the run printed.
    """
    with airflow_connections(
        pachyderm_default=pachyderm_conn(stack.host, stack.port), mlflow_default=mlflow_conn(mlflow_uri)
    ):
        capsys.readouterr()
        dr = _run(conf)
    output = capsys.readouterr()
    states = _states(dr)
    assert str(dr.state) == "failed"
    assert states["record_lineage"] in ("upstream_failed", "skipped"), states
    return states, output.out + output.err


def test_dag_refuses_a_file_without_the_paysim_header_naming_file_and_problem(stack, tmp_path, capsys):
    source = tmp_path / "source"
    source.mkdir()
    (source / "day-07.csv").write_text("when,what,how_much\n1,coffee,3.5\n")
    conf = {"source": str(source / "*.csv"), "mlflow_experiment": unique_name("exp")}
    # MLflow is never reached: the push refuses the file before committing it
    states, text = _failed_run(stack, conf, f"http://127.0.0.1:{free_port()}", capsys)
    assert states["push_raw_data"] == "failed" and states["wait_split_data"] == "upstream_failed", states
    assert "day-07.csv" in text and "header lacks column(s) step, type" in text, text[-3000:]
    assert "nothing was committed" in text


@pytest.mark.spark
def test_dag_fails_training_quickly_when_mlflow_is_down(stack, tmp_path, capsys):
    from spark_jobs.generate import GenerateConfig, generate

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    source = tmp_path / "source"
    generate(GenerateConfig(rows=3000, customers=600, days=1, seed=11, fraud_rate=0.03), source)
    conf = {"source": str(source / "*.csv"), "mlflow_experiment": unique_name("exp")}
    started = time.monotonic()
    states, text = _failed_run(stack, conf, uri, capsys)
    took = time.monotonic() - started
    assert states["wait_etl"] == "success" and states["wait_ml_train"] == "failed", states
    assert f"MLflow at {uri} is unreachable" in text, text[-3000:]
    assert took < BOUND_S, f"the DAG took {took:.0f}s to report that MLflow is down"


# --- kill -9 pachd-lite in the middle of a DAG run ----------------------------------------------


class KillOnce:
    """A thread that SIGKILLs pachd-lite once ``condition()`` holds, then restarts it on the same root/port."""

    def __init__(self, pachd, condition, down_s: float = DOWN_S) -> None:
        import threading

        self.pachd, self.condition, self.down_s = pachd, condition, down_s
        self.killed_at: float | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> KillOnce:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.2):
                try:
                    ready = self.condition()
                except Exception:  # pachd or MLflow busy/not there yet: look again
                    ready = False
                if ready:
                    self.pachd.kill()
                    self.killed_at = time.monotonic()
                    time.sleep(self.down_s)
                    self.pachd.start()
                    return
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def _trained(pachd) -> bool:
    """An ml_train job that processed data has succeeded (not the empty job a new pipeline gets)."""
    from pachyderm_sdk.api import pps

    jobs = pachd.client().pps.list_job(pipeline=pps.Pipeline(name="ml_train"))
    return any(j.state == pps.JobState.JOB_SUCCESS and j.data_processed > 0 for j in jobs)


def _kill_orphans(pachd) -> list[str]:
    """User code that outlived its killed pachd-lite (its sandbox is under the root): stop it, by pid."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.pid != pachd.pid and any(str(pachd.root) in arg for arg in cmdline):
            found.append(" ".join(cmdline)[:200])
            try:
                proc.kill()
            except psutil.Error:
                pass
    return found


@pytest.mark.spark
@pytest.mark.parametrize(
    "phase",
    [
        "during_training",
        "before_lineage",
    ],
)
def test_dag_completes_after_pachd_is_killed(phase, stack, mlflow_server, tmp_path, capsys):
    import json

    from mlflow import MlflowClient
    from pachyderm_sdk.api import pfs

    from pachflow_tools import lineage_cli
    from spark_jobs.generate import GenerateConfig, generate

    source = tmp_path / "source"
    (day,) = generate(GenerateConfig(rows=3000, customers=600, days=1, seed=13, fraud_rate=0.03), source)
    conf = {
        "source": str(day),
        "mlflow_experiment": unique_name("crash"),
        "model_name": unique_name("crash-model"),
        "max_depth": 3,
    }
    mlflow_client = MlflowClient(mlflow_server.tracking_uri)

    def training_started() -> bool:
        experiment = mlflow_client.get_experiment_by_name(conf["mlflow_experiment"])
        return experiment is not None and bool(
            mlflow_client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
        )

    condition = training_started if phase == "during_training" else (lambda: _trained(stack))
    try:
        with airflow_connections(
            pachyderm_default=pachyderm_conn(stack.host, stack.port),
            mlflow_default=mlflow_conn(mlflow_server.tracking_uri),
        ):
            with KillOnce(stack, condition) as killer:
                dr = _run(conf)
    finally:
        orphans = _kill_orphans(stack)
    assert killer.error is None, killer.error
    assert killer.killed_at is not None, "pachd-lite was never killed: the fault was not injected"
    states = _states(dr)
    assert set(states.values()) == {"success"}, states
    assert orphans == [], f"user code outlived the killed pachd-lite: {orphans}"

    client = stack.client()
    commit_set = dr.get_task_instance("push_raw_data").xcom_pull(task_ids="push_raw_data")
    rec = dr.get_task_instance("record_lineage").xcom_pull(task_ids="record_lineage", key="lineage")
    assert rec["commit_set"] == commit_set and set(rec["commits"].values()) == {commit_set}
    # the finished raw commit reads back byte-identical
    raw = client.pfs.pfs_file(pfs.File.from_uri(f"raw_data@{commit_set}:/{day.name}")).read()
    assert raw == day.read_bytes()
    # XCom, MLflow tags and commit metadata agree
    run = mlflow_client.get_run(rec["mlflow_run_id"])
    meta = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"ml_train@{commit_set}")).metadata
    assert run.data.tags["pachyderm.commit"] == commit_set == rec["commits"]["ml_train"]
    assert (
        meta["mlflow.run_id"] == rec["mlflow_run_id"] and meta["mlflow.model_version"] == rec["model_version"]
    )
    # never duplicated: one model version, one lineage pair for the raw commit
    versions = mlflow_client.search_model_versions(f"name = '{conf['model_name']}'")
    assert [v.version for v in versions] == [rec["model_version"]]
    capsys.readouterr()
    conn = ["--pachd-address", stack.address, "--tracking-uri", mlflow_server.tracking_uri, "--json"]
    assert lineage_cli.main(["--commit", f"raw_data@{commit_set}", *conn]) == 0
    backward = json.loads(capsys.readouterr().out)
    assert [(r["mlflow_run_id"], r["model_version"]) for r in backward] == [
        (rec["mlflow_run_id"], rec["model_version"])
    ]
    assert lineage_cli.main(["--run-id", rec["mlflow_run_id"], *conn]) == 0
    assert json.loads(capsys.readouterr().out)["consistent"] is True


# --- two daily runs submitted together -----------------------------------------------------------

_RUN_DAG = """
import json, sys
import pendulum
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).get_dag("fraud_detection")
dr = dag.test(run_conf=json.loads(sys.argv[2]), logical_date=pendulum.parse(sys.argv[3]))
ti = dr.get_task_instance("record_lineage")
print("RESULT " + json.dumps({
    "state": str(dr.state),
    "run_id": dr.run_id,
    "states": {t.task_id: str(t.state) for t in dr.get_task_instances()},
    "pushed": ti.xcom_pull(task_ids="push_raw_data"),
    "lineage": ti.xcom_pull(task_ids="record_lineage", key="lineage"),
}))
"""


@pytest.mark.spark
def test_two_daily_runs_submitted_together_each_get_their_own_commit_set(stack, mlflow_server, tmp_path):
    """Two ``airflow dags test``-style processes for two days, started at the same moment."""
    import json
    import os
    import subprocess
    import sys

    from mlflow import MlflowClient
    from pachyderm_sdk.api import pfs

    from spark_jobs.generate import GenerateConfig, generate
    from tests.fixtures.airflow import connection_env

    days = generate(
        GenerateConfig(rows=4000, customers=600, days=2, seed=17, fraud_rate=0.03), tmp_path / "gen"
    )
    experiment, model = unique_name("concurrent"), unique_name("concurrent-model")
    env = dict(os.environ)
    env.update([connection_env("pachyderm_default", **pachyderm_conn(stack.host, stack.port))])
    env.update([connection_env("mlflow_default", **mlflow_conn(mlflow_server.tracking_uri))])
    procs = []
    for i, day in enumerate(days):
        conf = {"source": str(day), "mlflow_experiment": experiment, "model_name": model, "max_depth": 3}
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _RUN_DAG,
                    str(ROOT / "dags" / "fraud_detection.py"),
                    json.dumps(conf),
                    f"2026-03-0{i + 1}T00:00:00+00:00",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=ROOT,
                env=env,
            )  # fmt: skip
        )
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=540)
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        assert lines, out[-4000:]
        results.append(json.loads(lines[-1].removeprefix("RESULT ")))
    for r in results:
        assert r["state"] == "success", r["states"]
    pushed = [r["pushed"] for r in results]
    assert len(set(pushed)) == 2 and all(pushed), pushed
    client = stack.client()
    mlflow_client = MlflowClient(mlflow_server.tracking_uri)
    run_ids = set()
    for r in results:
        rec = r["lineage"]
        assert rec["commit_set"] == r["pushed"] and set(rec["commits"].values()) == {r["pushed"]}, rec
        meta = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"ml_train@{r['pushed']}")).metadata
        assert meta["mlflow.run_id"] == rec["mlflow_run_id"] and meta["airflow.run_id"] == r["run_id"]
        tags = mlflow_client.get_run(rec["mlflow_run_id"]).data.tags
        assert tags["pachyderm.provenance.raw_data"] == r["pushed"] and tags["airflow.run_id"] == r["run_id"]
        run_ids.add(rec["mlflow_run_id"])
    assert len(run_ids) == 2
