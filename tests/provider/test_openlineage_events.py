"""OpenLineage for real: the openlineage provider's listener, with its file transport, during a DAG run
against pachd-lite and MLflow; the events are read back from the file.

The DAG is the shape of the example DAGs without Spark: push two inputs of a joined graph in one
commit set, wait for the trainer's commit, record the lineage. The push, wait and record tasks
must carry ``pachyderm://`` datasets named like the Assets (``project/repo@branch``) with the
commit as dataset version, and the record task the MLflow run and model version (run facet
``pachflow_mlflow``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pendulum
import pytest

pytest.importorskip(
    "airflow.providers.openlineage", reason="apache-airflow-providers-openlineage not installed"
)

from airflow.sdk import DAG  # noqa: E402

from pachflow.assets import pachyderm_asset  # noqa: E402
from pachflow.operators.files import PachydermPutFilesOperator  # noqa: E402
from pachflow.operators.lineage import PachydermRecordLineageOperator  # noqa: E402
from pachflow.sensors.pachyderm import PachydermCommitSensor  # noqa: E402
from tests.fixtures.airflow import airflow_connections, mlflow_conn, pachyderm_conn  # noqa: E402
from tests.fixtures.pachd import unique_name  # noqa: E402
from tests.provider.worker_specs import build_join_graph  # noqa: E402

START = pendulum.datetime(2026, 1, 1, tz="UTC")


@pytest.fixture
def openlineage_file(tmp_path, monkeypatch) -> Iterator[Path]:
    """A fresh OpenLineage listener writing every event to one file (in a thread: no fork)."""
    from airflow.providers.openlineage import conf
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener
    from airflow.sdk.listener import get_listener_manager

    path = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(path), "append": True}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "pachflow-tests")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")

    def clear() -> None:  # the provider caches its settings per process
        for value in vars(conf).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()

    clear()
    assert not conf.is_disabled() and conf.transport()["type"] == "file"
    # The manager integrates the plugins' listeners when first built: OpenLineage's own listener
    # is there if that happened now (OpenLineage enabled); else one is added.
    manager = get_listener_manager()
    registered = [p for p in manager.pm.get_plugins() if isinstance(p, OpenLineageListener)]
    listener = registered[0] if registered else OpenLineageListener()
    manager.add_listener(listener)
    try:
        yield path
    finally:
        manager.pm.unregister(listener)
        monkeypatch.undo()
        clear()


def _events(path: Path) -> list[dict]:
    assert path.exists(), f"no OpenLineage event written to {path}"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _complete(events: list[dict], task_id: str) -> dict:
    found = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(f".{task_id}")]
    assert len(found) == 1, (task_id, [(e["eventType"], e["job"]["name"]) for e in events])
    return found[0]


def _datasets(items: list[dict]) -> dict[str, str]:
    """``pachyderm://`` + name -> commit (the dataset version)."""
    for d in items:
        assert d["namespace"].startswith("pachyderm://127.0.0.1:"), d
    return {f"pachyderm://{d['name']}": d["facets"]["version"]["datasetVersion"] for d in items}


def test_push_wait_and_record_emit_pachyderm_datasets_and_the_mlflow_run(
    run_dag, pachd_server, mlflow_server, tmp_path, openlineage_file
):
    g = build_join_graph(pachd_server.client(), mlflow_server.tracking_uri, unique_name("exp"))
    source = tmp_path / "src"
    for repo, header in ((g.events, "id,x"), (g.labels, "id,y")):
        (source / repo).mkdir(parents=True)
        (source / repo / "c.csv").write_text(f"{header}\n5,1\n")
    model = unique_name("scorer")
    with DAG(unique_name("ol"), schedule=None, start_date=START) as dag:
        push = PachydermPutFilesOperator(
            task_id="push", project=g.project,
            files={g.events: str(source / g.events), g.labels: str(source / g.labels)},
        )  # fmt: skip
        wait = PachydermCommitSensor(
            task_id="wait", repo=g.train, project=g.project, commit_set="{{ ti.xcom_pull(task_ids='push') }}",
            deferrable=False, poke_interval=0.2, timeout=300,
        )  # fmt: skip
        record = PachydermRecordLineageOperator(
            task_id="record", project=g.project, train_repo=g.train, model_name=model, alias="production",
            commit_set="{{ ti.xcom_pull(task_ids='push') }}",
        )  # fmt: skip
        push >> wait >> record
    connections = {
        "pachyderm_default": pachyderm_conn(pachd_server.host, pachd_server.port),
        "mlflow_default": mlflow_conn(mlflow_server.tracking_uri),
    }
    with airflow_connections(**connections):
        dr = run_dag(dag)
    assert {ti.task_id: str(ti.state) for ti in dr.get_task_instances()} == dict.fromkeys(
        ("push", "wait", "record"), "success"
    )
    commit = dr.get_task_instance("push").xcom_pull(task_ids="push")
    rec = dr.get_task_instance("record").xcom_pull(task_ids="record", key="lineage")

    def uri(repo: str) -> str:
        return pachyderm_asset(repo, "master", g.project).uri

    events = _events(openlineage_file)
    pushed = _complete(events, "push")
    assert pushed["inputs"] == [] and _datasets(pushed["outputs"]) == {
        uri(g.events): commit,
        uri(g.labels): commit,
    }
    waited = _complete(events, "wait")
    assert _datasets(waited["inputs"]) == {uri(g.train): commit} and waited["outputs"] == []
    recorded = _complete(events, "record")
    assert _datasets(recorded["inputs"]) == {
        uri(repo): commit for repo in (g.events, g.labels, g.features, g.train)
    }
    facet = recorded["run"]["facets"]["pachflow_mlflow"]
    assert facet["run_id"] == rec["mlflow_run_id"] and len(facet["run_id"]) == 32
    assert (facet["model_name"], facet["model_version"]) == (model, rec["model_version"])
    assert facet["experiment_id"] == rec["mlflow_experiment_id"]
    assert facet["tracking_uri"] == mlflow_server.tracking_uri and facet["_schemaURL"]
