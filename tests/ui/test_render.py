"""The lineage page's drawing and input rules, on hand-made records (no servers)."""

from __future__ import annotations

import pytest

from pachflow.ui import queries, render
from pachflow.ui.graph import scrub
from pachflow.ui.plugin import EXTERNAL_VIEWS, PachflowPlugin

C = "0" * 31


def _record(job_state: str = "JOB_SUCCESS", reason: str = "") -> dict:
    def commit(repo: str, n: int, pipeline: bool, **details) -> dict:
        return {"id": f"p/{repo}@{C}{n}", "kind": "commit", "project": "p", "repo": repo,
                "commit": f"{C}{n}", "pipeline": pipeline, "details": {"size_bytes": 2048, **details}}  # fmt: skip

    job = {"state": job_state, "reason": reason, "data_processed": 1, "data_skipped": 0, "data_failed": 1,
           "duration_s": 1.5}  # fmt: skip
    nodes = [
        commit("events", 1, False),
        commit("labels", 2, False),
        commit("features", 3, True, job=job),
        {
            "id": "mlflow_run:" + "a" * 32,
            "kind": "mlflow_run",
            "run_id": "a" * 32,
            "details": {"metrics": {"auc": 0.9}},
        },
        {
            "id": "model_version:m/2",
            "kind": "model_version",
            "name": "m",
            "version": "2",
            "aliases": ["prod"],
        },
    ]
    edges = [(0, 2), (1, 2), (2, 3), (3, 4)]
    return {
        "mlflow_run_id": "a" * 32,
        "model_name": "m",
        "model_version": "2",
        "graph": {
            "nodes": nodes,
            "edges": [{"from": nodes[a]["id"], "to": nodes[b]["id"]} for a, b in edges],
        },
        "model_aliases": {"m": {"prod": "2", "staging": "1"}},
    }


def test_joined_inputs_are_two_rows_feeding_one_node():
    graph = _record()["graph"]
    pos = render.layout(graph)
    ids = [n["id"] for n in graph["nodes"]]
    assert [pos[i] for i in ids] == [(0, 0), (0, 1), (1, 0), (2, 0), (3, 0)]
    html = render.record_html(_record(), rollback_url="/pachflow/rollback")
    for nid in ids:
        assert f"data-id='{nid}'" in html and f"<code>{nid}</code>" in html
    assert (
        html.count("class='edge'") == 4 and "Roll back to this" in html and "<option>staging</option>" in html
    )


def test_rejected_rows_show_on_the_commit_that_rejected_them():
    record = _record()
    record["graph"]["nodes"][2]["details"]["rejected_rows"] = 12
    assert "success, 1.5 s, 12 rejected" in render.svg(record["graph"])
    assert "rejected" not in render.svg(_record()["graph"])


def test_failed_job_is_marked_with_its_reason():
    html = render.svg(_record("JOB_FAILURE", "datum failed: <oops>")["graph"])
    assert "class='node commit failed'" in html and "datum failed: &lt;oops&gt;" in html
    assert "failed" not in render.svg(_record()["graph"]).replace("data_failed", "")


def test_credentials_in_urls_are_removed():
    rec = {"tracking_uri": "https://bob:s3cret@mlflow.example/x", "nested": ["grpc://tok@pachd:30650"]}
    assert scrub(rec) == {"tracking_uri": "https://mlflow.example/x", "nested": ["grpc://pachd:30650"]}


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"commit": "p/r@" + "0" * 31}, "commit id"),
        ({"commit": "p q/r@" + "0" * 32}, "project"),
        ({"model": "m", "alias_": "a b"}, "alias"),
        ({"dag_id_": "d", "dag_run_id_": "r", "task_id": "t/../x"}, "task_id"),
    ],
)
def test_malformed_lookups_name_the_parameter(kwargs, named):
    with pytest.raises(queries.BadQuery, match=named):
        queries.lookup(**kwargs)


def test_plugin_declares_the_tabs_and_builds_its_app_only_when_asked():
    assert {v["destination"] for v in EXTERNAL_VIEWS} == {"nav", "dag_run", "task_instance"}
    assert isinstance(PachflowPlugin.__dict__["fastapi_apps"], property)
