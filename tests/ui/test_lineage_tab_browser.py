"""The "Lineage" tab of a DAG run in Airflow's own UI, rendered by headless Chromium (skipped, with
the install command, when Chromium is not installed). The user is logged in with a real JWT cookie
of the api-server; the tab's iframe must show every commit, the MLflow run and the model version,
and its MLflow link must point at the run. A screenshot is kept for humans (lineage-tab.png)."""

from __future__ import annotations

import time

import pytest

from tests.local.browser import INSTALL_HINT, HeadlessChromium, find_chromium

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    found = find_chromium()
    if found is None:
        pytest.skip(f"Chromium/chromedriver not installed (install with: {INSTALL_HINT})")
    return found


def _frame_text(page: HeadlessChromium, needle: str, timeout: float = 90) -> str:
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
        text = _frame_text(page, f"MLflow run {rec['mlflow_run_id']}")
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
