"""Lineage as a graph: two input repos joined, in a project of their own, recorded by the operator
and looked up both ways (from either input, and from the run) with the CLI."""

from __future__ import annotations

import json

import pendulum
from airflow.sdk import DAG

from pachflow.contract import node_id
from pachflow.operators.lineage import PachydermRecordLineageOperator
from pachflow_tools import lineage_cli
from tests.fixtures.pachd import unique_name
from tests.provider.worker_specs import build_join_graph

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _cli(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = lineage_cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out if code == 0 else captured.out + captured.err


def test_joined_inputs_are_branches_of_the_lineage_both_ways(
    run_dag, pachyderm_connection, mlflow_connection, pachd_server, capsys
):
    client = pachd_server.client()
    g = build_join_graph(client, mlflow_connection, unique_name("exp"))
    model_name = unique_name("scorer")
    with DAG(unique_name("record"), schedule=None, start_date=START) as dag:
        PachydermRecordLineageOperator(
            task_id="record",
            commit_set=g.train_commit,
            project=g.project,  # the connection's project is "default"
            train_repo=g.train,
            model_name=model_name,
            alias="production",
        )
    dr = run_dag(dag)
    rec = dr.get_task_instance("record").xcom_pull(task_ids="record", key="lineage")
    assert rec["project"] == g.project and rec["model_name"] == model_name and rec["model_version"] == "1"
    # both inputs are sources; the flat map is upstream first, the training commit last
    assert rec["sources"] == [g.events, g.labels]
    assert rec["commits"][g.events] == g.events_commit and rec["commits"][g.labels] == g.labels_commit
    assert list(rec["commits"])[2:] == [g.features, g.train]
    link = dr.get_task_instance("record").xcom_pull(task_ids="record", key="pachyderm_commit")
    assert link["project"] == g.project and link["repo"] == g.train

    conn = [
        "--pachd-address",
        f"{pachd_server.host}:{pachd_server.port}",
        "--tracking-uri",
        mlflow_connection,
    ]
    features_commit = rec["commits"][g.features]
    events_id = node_id(g.project, g.events, g.events_commit)
    labels_id = node_id(g.project, g.labels, g.labels_commit)
    features_id = node_id(g.project, g.features, features_commit)
    train_id = node_id(g.project, g.train, g.train_commit)

    def check_graph(record: dict) -> None:
        graph = record["graph"]
        edges = {(e["from"], e["to"]) for e in graph["edges"]}
        # the joined inputs are two branches into the join's output, not a chain
        assert {(events_id, features_id), (labels_id, features_id), (features_id, train_id)} <= edges
        assert (events_id, labels_id) not in edges and (labels_id, events_id) not in edges
        run_node = f"mlflow_run:{record['mlflow_run_id']}"
        assert (train_id, run_node) in edges and (run_node, f"model_version:{model_name}/1") in edges
        kinds = {n["id"]: n for n in graph["nodes"]}
        assert kinds[events_id]["pipeline"] is False and kinds[features_id]["pipeline"] is True
        assert kinds[f"model_version:{model_name}/1"]["aliases"] == ["production"]

    check_graph(rec)
    # --commit from either input, with or without the project prefix; no --train-repo needed
    for commit_arg in (f"{g.project}/{g.events}@{g.events_commit}", f"{g.labels}@{g.labels_commit}"):
        extra = [] if commit_arg.startswith(g.project) else ["--project", g.project]
        code, out = _cli(capsys, "--commit", commit_arg, "--json", *extra, *conn)
        assert code == 0, out
        (found,) = json.loads(out)
        assert (
            found["mlflow_run_id"] == rec["mlflow_run_id"] and found["source"] == "pachyderm commit metadata"
        )
        assert found["sources"] == [g.events, g.labels]
        check_graph(found)
    # --run-id: the run's own project tag, although the connection (and --project) say "default"
    code, out = _cli(capsys, "--run-id", rec["mlflow_run_id"], "--json", *conn)
    assert code == 0, out
    forward = json.loads(out)
    assert forward["consistent"] is True and forward["commits"] == rec["commits"]
    check_graph(forward)
    # the text tree draws the two inputs as sibling branches under the join's output
    code, out = _cli(capsys, "--commit", f"{g.project}/{g.events}@{g.events_commit}", *conn)
    assert code == 0, out
    lines = out.splitlines()
    under = lines.index(f"└── trained on {g.train}@{g.train_commit}")
    assert lines[under + 1 : under + 4] == [
        f"    └── {g.features}@{features_commit}",
        f"        ├── {g.events}@{g.events_commit}",
        f"        └── {g.labels}@{g.labels_commit}",
    ], out
    assert f"model {model_name} version 1 [production]" in out
    # MLflow alone (no pachd): the tag search finds the run from an input
    code, out = _cli(
        capsys,
        "--commit",
        f"{g.project}/{g.labels}@{g.labels_commit}",
        "--no-pachyderm",
        "--json",
        "--tracking-uri",
        mlflow_connection,
    )
    assert code == 0, out
    (found,) = json.loads(out)
    assert found["mlflow_run_id"] == rec["mlflow_run_id"] and found["source"] == "mlflow tag search"
    assert found["commits"][g.events] == g.events_commit
