"""The pachflow plugin in a real Airflow api-server, against real pachd-lite and MLflow: it is
registered, every view needs Airflow's authentication, the JSON and HTML show every node of a
joined graph with live details, bad input is a 400, and a rollback moves the alias only after
confirmation and only for a user who may edit the DAG. The "Lineage" tab of the DAG run in Airflow's
own UI is checked in headless Chromium when it is installed (a screenshot, lineage-tab.png, is kept
in the test's folder for humans)."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, urlencode

import pytest
from mlflow import MlflowClient

from pachflow.contract import node_id
from pachflow.lineage import lineage_for_run
from tests.local.browser import HeadlessChromium
from tests.ui.lineage_tab import frame_text

pytestmark = pytest.mark.timeout(600)


def _q(**params: str) -> str:
    return urlencode(params)


def _ids(record: dict) -> set[str]:
    return {n["id"] for n in record["graph"]["nodes"]}


def test_plugin_is_registered_with_its_app_tabs_and_page(api_server):
    plugins = api_server.json("/api/v2/plugins")["plugins"]
    (plugin,) = [p for p in plugins if p["name"] == "pachflow"]
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/pachflow"]
    views = {v["destination"]: v["href"] for v in plugin["external_views"]}
    assert set(views) == {"nav", "dag_run", "task_instance"}
    assert (
        "{DAG_ID}" in views["dag_run"]
        and "{RUN_ID}" in views["dag_run"]
        and "{TASK_ID}" in views["task_instance"]
    )
    assert api_server.json("/api/v2/plugins/importErrors")["total_entries"] == 0


def test_every_view_needs_airflow_authentication(api_server, recorded):
    run = recorded.rec["mlflow_run_id"]
    for method, path in (
        ("GET", f"/pachflow/api/lineage?run_id={run}"),
        ("GET", f"/pachflow/lineage?run_id={run}"),
        ("GET", f"/pachflow/dag_run?{_q(dag_id=recorded.dag_id, dag_run_id=recorded.run_id)}"),
        ("GET", f"/pachflow/rollback?{_q(model=recorded.model, version='1', alias='production')}"),
        ("POST", "/pachflow/rollback"),
    ):
        status, body, _ = api_server.request(method, path)
        assert status in (401, 403), (method, path, status, body[:200])
        status, _, _ = api_server.request(method, path, headers={"Authorization": "Bearer not-a-jwt"})
        assert status in (401, 403), (method, path, status)
        assert run not in body
    assert api_server.request("GET", f"/pachflow/api/lineage?run_id={run}", user="viewer")[0] == 200


def test_json_graph_by_run_model_commit_and_dag_run_with_live_details(
    api_server, recorded, mlflow_server, pachd_server
):
    g, rec = recorded.g, recorded.rec
    run = rec["mlflow_run_id"]
    cli = lineage_for_run(MlflowClient(mlflow_server.tracking_uri), run, client=pachd_server.client())
    lookups = {
        "run": _q(run_id=run),
        "version": _q(model=recorded.model, version="1"),
        "alias": _q(model=recorded.model, alias="production"),
        "commit": _q(commit=f"{g.project}/{g.events}@{g.events_commit}"),
        "dag_run": _q(dag_id=recorded.dag_id, dag_run_id=recorded.run_id),
        "task": _q(dag_id=recorded.dag_id, dag_run_id=recorded.run_id, task_id="record"),
    }
    for name, query in lookups.items():
        answer = api_server.json(f"/pachflow/api/lineage?{query}")
        (found,) = answer["records"]
        assert found["mlflow_run_id"] == run, name
        assert _ids(found) == _ids(cli), name  # the CLI's --json graph, node for node
        assert {(e["from"], e["to"]) for e in found["graph"]["edges"]} == {
            (e["from"], e["to"]) for e in cli["graph"]["edges"]
        }, name
        assert set(cli) - {"consistent", "commit_metadata"} <= set(found), name
    nodes = {n["id"]: n for n in found["graph"]["nodes"]}
    events = nodes[node_id(g.project, g.events, g.events_commit)]
    assert events["details"]["size_bytes"] > 0 and events["details"]["finished"]
    assert "job" not in events["details"] and "/pachflow/lineage?commit=" in events["url"]
    train = nodes[node_id(g.project, g.train, g.train_commit)]
    job = train["details"]["job"]
    assert job["state"] == "JOB_SUCCESS" and job["data_processed"] + job["data_skipped"] >= 1
    assert job["duration_s"] is not None and job["duration_s"] >= 0
    run_node = nodes[f"mlflow_run:{run}"]
    assert run_node["details"]["status"] == "FINISHED" and "rows" in run_node["details"]["metrics"]
    assert (
        run_node["url"]
        == f"{mlflow_server.tracking_uri}/#/experiments/{rec['mlflow_experiment_id']}/runs/{run}"
    )
    version = nodes[f"model_version:{recorded.model}/1"]
    assert version["aliases"] == ["production"] and version["details"]["url"].endswith("/versions/1")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("run_id=not-a-run", "run_id"),
        ("run_id=" + "A" * 32, "run_id"),
        ("commit=repo-without-commit", "commit"),
        ("commit=" + quote("p/r@zz<script>"), "commit id"),
        ("model=m", "version or alias"),
        ("model=m&version=one", "version"),
        ("dag_id=d", "dag_run_id"),
        ("", "exactly one"),
        ("run_id=" + "0" * 32 + "&commit=p/r@" + "0" * 32, "exactly one"),
    ],
)
def test_malformed_input_is_a_400_naming_it(api_server, query, named):
    status, body, _ = api_server.request("GET", f"/pachflow/api/lineage?{query}", user="viewer")
    assert status == 400 and named in json.loads(body)["detail"], body
    if not query or query.startswith("dag_id"):
        return  # the navigation page has no DAG-run lookup; without parameters it shows the form
    status, body, _ = api_server.request("GET", f"/pachflow/lineage?{query}", user="viewer")
    assert status == 400 and "Traceback" not in body and "<script>" not in body


def test_pachyderm_commit_link_opens_the_lineage_view_without_a_console_url(api_server, recorded):
    g = recorded.g
    path = f"/pachflow/lineage?commit={g.project}/{g.train}@{g.train_commit}"
    assert recorded.commit_link and recorded.commit_link.endswith(path), recorded.commit_link
    status, html, _ = api_server.request("GET", path, user="viewer")
    assert status == 200 and f"MLflow run {recorded.rec['mlflow_run_id']}" in html


def test_unknown_things_are_404s_not_500s(api_server, recorded):
    for query in (
        _q(run_id="0" * 32),
        _q(model=recorded.model, version="99"),
        _q(commit=f"{recorded.g.project}/{recorded.g.events}@{'0' * 32}"),
        _q(dag_id=recorded.dag_id, dag_run_id="no-such-run"),
    ):
        status, body, _ = api_server.request("GET", f"/pachflow/api/lineage?{query}", user="viewer")
        assert status == 404, (query, status, body[:300])


def test_dag_run_tab_draws_every_node_offline(api_server, recorded, mlflow_server):
    rec = recorded.rec
    tabs = [
        f"/pachflow/dag_run?{_q(dag_id=recorded.dag_id, dag_run_id=recorded.run_id)}",
        f"/pachflow/task_instance?{_q(dag_id=recorded.dag_id, dag_run_id=recorded.run_id, task_id='record')}",
    ]
    for path in tabs:
        status, html, headers = api_server.request("GET", path, user="viewer")
        assert status == 200 and headers["content-type"].startswith("text/html"), html[:500]
        for node in rec["graph"]["nodes"]:
            assert f"data-id='{node['id']}'" in html, node["id"]  # a box in the SVG
            assert f"<code>{node['id']}</code>" in html  # and a row of the table
        run_url = f"{mlflow_server.tracking_uri}/#/experiments/{rec['mlflow_experiment_id']}/runs/{rec['mlflow_run_id']}"
        assert f"href='{run_url}'" in html
        assert "<script" not in html and not re.search(r"(src|href)=['\"]https?://(?!127\.0\.0\.1)", html)
        assert "Roll back to this" in html and "@production" in html


def test_lineage_tab_of_a_dag_run_in_the_airflow_ui(chromium, api_server, recorded, tmp_path):
    browser, driver = chromium
    rec = recorded.rec
    with HeadlessChromium(browser, driver, tmp_path / "profile", tmp_path / "chromedriver.log") as page:
        page.open(f"{api_server.url}/api/v2/monitor/health")
        page._call(
            "POST",
            "/cookie",
            {"cookie": {"name": "_token", "value": api_server.token("viewer"), "path": "/"}},
        )
        page.open(
            f"{api_server.url}/dags/{recorded.dag_id}/runs/{recorded.run_id}/plugin/pachflow-lineage-run"
        )
        text = frame_text(page, f"MLflow run {rec['mlflow_run_id']}")
        for node in rec["graph"]["nodes"]:
            if node["kind"] == "commit":
                assert f"{node['repo']}@{node['commit']}" in text.replace(f"{node['project']}/", ""), node[
                    "id"
                ]
            else:
                assert node["id"] in text, node["id"]
        links = page._call("POST", "/elements", {"using": "css selector", "value": "td a"})
        hrefs = [page._call("GET", f"/element/{next(iter(e.values()))}/attribute/href") for e in links]  # type: ignore[union-attr]
        run_url = f"#/experiments/{rec['mlflow_experiment_id']}/runs/{rec['mlflow_run_id']}"
        assert any(h and h.endswith(run_url) for h in hrefs), hrefs
        page._call("POST", "/frame/parent", {})
        page._call("POST", "/window/rect", {"width": 1400, "height": 900})
        shot = page.screenshot(tmp_path / "lineage-tab.png")
        assert shot.stat().st_size > 5000
        print(f"screenshot: {shot}")


def test_rollback_moves_the_alias_only_after_confirmation_by_an_editor(api_server, recorded, mlflow_server):
    mlflow = MlflowClient(mlflow_server.tracking_uri)
    model, run = recorded.model, recorded.rec["mlflow_run_id"]
    newer = mlflow.create_model_version(model, f"runs:/{run}/model", run_id=run)
    mlflow.set_registered_model_alias(model, "production", newer.version)

    def alias_now() -> str:
        return str(mlflow.get_registered_model(model).aliases["production"])

    plan_path = f"/pachflow/api/rollback/plan?{_q(model=model, version='1', alias='production')}"
    plan = api_server.json(plan_path, user="viewer")
    assert plan["dry_run"] is True and plan["from_version"] == newer.version and plan["to_version"] == "1"
    assert plan["allowed"] is False and alias_now() == newer.version and plan["data"] is None
    with_data = api_server.json(f"{plan_path}&data=true", user="viewer")
    g = recorded.g
    assert {b["branch"]: b["change"] for b in with_data["data"]} == {
        f"{g.project}/{g.events}@master": "already there",
        f"{g.project}/{g.labels}@master": "already there",
    }
    page = api_server.request(
        "GET", f"/pachflow/rollback?{_q(model=model, version='1', alias='production')}", user="admin"
    )
    assert page[0] == 200 and "Confirm rollback" in page[1] and plan["confirm"] in page[1]
    body = {"model": model, "version": "1", "alias": "production", "confirm": plan["confirm"]}
    # a viewer may not; nobody without the confirmed plan; no page of another site
    assert api_server.request("POST", "/pachflow/api/rollback", user="viewer", json_body=body)[0] == 403
    assert (
        api_server.request(
            "POST", "/pachflow/api/rollback", user="admin", json_body={**body, "confirm": "x"}
        )[0]
        == 409
    )
    cross = api_server.request(
        "POST", "/pachflow/rollback", user="admin", form=body, headers={"Origin": "https://evil.example"}
    )
    assert cross[0] == 403
    assert alias_now() == newer.version
    status, html, _ = api_server.request("POST", "/pachflow/rollback", user="admin", form=body)
    assert status == 200 and "is now on version 1" in html, html[:500]
    assert alias_now() == "1"
    # the same confirmation again is stale: the alias already moved
    assert api_server.request("POST", "/pachflow/api/rollback", user="admin", json_body=body)[0] == 409
