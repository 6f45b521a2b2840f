"""Check the "Lineage" tab of a real DAG run in Airflow's own UI, in headless Chromium.

Used by the end-to-end tests after their DAG runs (no extra run is paid): a real ``airflow
api-server`` (simple auth manager) is started on the test session's Airflow database with the
connections of the current environment, the DAG run's tab is opened, and every repo commit, the
MLflow run and the model version must be in the rendered page, with the MLflow link on the run.
A screenshot is saved for humans and its path printed.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.local.browser import HeadlessChromium, chromium_or_skip
from tests.ui.server import ApiServer


def frame_text(page: HeadlessChromium, needle: str, timeout: float = 90) -> str:
    """Text of the plugin's iframe once it contains ``needle``."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        page._call("POST", "/frame/parent", {})
        frames = page._call("POST", "/elements", {"using": "css selector", "value": "iframe"})
        if frames:
            page._call("POST", "/frame", {"id": frames[0]})  # type: ignore[index]
            text = page.page_text()
            if needle in text:
                return text
        time.sleep(1)
    page._call("POST", "/frame/parent", {})
    raise AssertionError(
        f"no iframe showing {needle!r}; page text:\n{page.page_text()[:2000]}\nframe:\n{text[:2000]}"
    )


def check_lineage_tab(tmp: Path, dag_id: str, run_id: str, rec: dict, tracking_uri: str) -> Path:
    """Open the Lineage tab of ``dag_id``/``run_id``, check it shows ``rec`` (the run's ``lineage``
    XCom); returns the screenshot's path."""
    browser, driver = chromium_or_skip()
    run = rec["mlflow_run_id"]
    (tmp / "api").mkdir(parents=True, exist_ok=True)
    with (
        ApiServer(tmp / "api", {}) as server,
        HeadlessChromium(browser, driver, tmp / "profile", tmp / "chromedriver.log") as page,
    ):
        page.open(f"{server.url}/api/v2/monitor/health")
        page._call(
            "POST", "/cookie", {"cookie": {"name": "_token", "value": server.token("viewer"), "path": "/"}}
        )
        page.open(f"{server.url}/dags/{dag_id}/runs/{run_id}/plugin/pachflow-lineage-run")
        text = frame_text(page, f"MLflow run {run}")
        shown = text
        for repo, commit in rec["commits"].items():
            assert f"{repo}@{commit}" in shown, (repo, commit, shown[:3000])
        assert f"model_version:{rec['model_name']}/{rec['model_version']}" in shown, shown[:3000]
        links = page._call("POST", "/elements", {"using": "css selector", "value": "a"})
        hrefs = [page._call("GET", f"/element/{next(iter(e.values()))}/attribute/href") for e in links]  # type: ignore[union-attr]
        run_url = f"{tracking_uri}/#/experiments/{rec['mlflow_experiment_id']}/runs/{run}"
        assert run_url in hrefs, hrefs
        page._call("POST", "/frame/parent", {})
        page._call("POST", "/window/rect", {"width": 1400, "height": 900})
        shot = page.screenshot(tmp / f"lineage-tab-{dag_id}.png")
    assert shot.stat().st_size > 5000
    print(f"screenshot of the Lineage tab of {dag_id} run {run_id}: {shot}")
    return shot
