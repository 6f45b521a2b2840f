"""Browser check (issue 7): the task page in Airflow's UI shows the "MLflow run" extra link.

Real parts: `airflow dags test` writes the run and the link XCom, `airflow api-server` serves the
React UI on loopback, headless Chromium (Debian's chromium + chromium-driver) renders the task page.
Skipped, with the install command, when Chromium is not installed.

`test_link_on_task_page_of_a_real_run` runs a one-task DAG that uses pachflow's own
MLflowRunLink. `test_link_on_task_page_of_the_demo_run` checks the state a whole-DAG run left
behind: the Airflow database of the local stack after `make demo` (default .local/, or the state
dir in PACHFLOW_LOCAL_DIR); it skips when there is none. The api-server only reads the stored link
XCom, so the services need not be running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.local.browser import (
    AirflowApiServer,
    HeadlessChromium,
)

LINK_NAME = "MLflow run"
DEMO_STATE_ENV = "PACHFLOW_LOCAL_DIR"  # the local stack whose demo run is checked

LINK_DAG = '''
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, BaseOperator

from pachflow.links import MLflowRunLink, persist_mlflow_link


class RecordRunOperator(BaseOperator):
    """Stores an MLflow run reference the way pachflow's training operator does."""

    operator_extra_links = (MLflowRunLink(),)

    def execute(self, context):
        persist_mlflow_link(context, tracking_uri="{tracking_uri}", experiment_id="{experiment_id}", run_id="{run_id}")


with DAG("browser_link_check", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    RecordRunOperator(task_id="train")
'''


def _airflow_env(airflow_home: Path, dags_folder: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        }
    )
    return env


def _airflow(env: dict[str, str], *args: str, log: Path) -> None:
    airflow = str(Path(sys.executable).with_name("airflow"))
    result = subprocess.run(
        [airflow, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"`airflow {' '.join(args)}` failed; log {log}:\n{result.stderr[-3000:]}"


def _latest_run_id(env: dict[str, str], dag_id: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pachflow_tools.local.airflow_report", dag_id],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["state"] == "success", report
    return report["run_id"]


def _check_task_page(
    chromium,
    tmp_path: Path,
    env: dict[str, str],
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    expected_href: str,
) -> None:
    browser, driver = chromium
    with AirflowApiServer(env, tmp_path / "api-server.log") as server:
        with HeadlessChromium(browser, driver, tmp_path / "profile", tmp_path / "chromedriver.log") as page:
            # The "Extra Links" section is on the task instance's Details tab.
            page.open(f"{server.url}/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/details")
            links = page.wait_for_links(LINK_NAME, timeout=90)
            screenshot = page.screenshot(tmp_path / "task-page.png")
            assert screenshot.stat().st_size > 1000
            assert links, (
                f"no '{LINK_NAME}' link on the task page (screenshot {screenshot}); page text:\n"
                f"{page.page_text()[:2000]}"
            )
            assert expected_href in [link["href"] for link in links], links


@pytest.mark.timeout(600)
def test_link_on_task_page_of_a_real_run(chromium, tmp_path):
    airflow_home, dags = tmp_path / "airflow", tmp_path / "dags"
    airflow_home.mkdir()
    dags.mkdir()
    tracking_uri, experiment_id, run_id = "http://127.0.0.1:5000", "7", "0123456789abcdef0123456789abcdef"
    (dags / "browser_link_check.py").write_text(
        textwrap.dedent(LINK_DAG).format(
            tracking_uri=tracking_uri, experiment_id=experiment_id, run_id=run_id
        )
    )
    env = _airflow_env(airflow_home, dags)
    _airflow(env, "db", "migrate", log=tmp_path / "db-migrate.log")
    _airflow(env, "dags", "test", "browser_link_check", log=tmp_path / "dags-test.log")
    dag_run_id = _latest_run_id(env, "browser_link_check")
    _check_task_page(
        chromium,
        tmp_path,
        env,
        dag_id="browser_link_check",
        run_id=dag_run_id,
        task_id="train",
        expected_href=f"{tracking_uri}/#/experiments/{experiment_id}/runs/{run_id}",
    )


def _state_of_a_demo_run() -> tuple[dict[str, str], dict] | None:
    """Airflow env and the newest recorded lineage of a `make demo` run (a whole-DAG run against the
    local stack), read from its Airflow database; None when no such run exists."""
    from pachflow_tools.local.airflow_env import process_environment
    from pachflow_tools.local.settings import LocalSettings
    from pachflow_tools.local.stack import StackRecord

    settings = LocalSettings.resolve(state_dir=os.environ.get(DEMO_STATE_ENV))
    record = StackRecord.load(settings)
    if record is None or not (settings.airflow_home / "airflow.db").exists():
        return None
    env = process_environment(record.settings)
    result = subprocess.run(
        [sys.executable, "-m", "pachflow_tools.local.airflow_report", "fraud_detection"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    newest = json.loads(result.stdout).get("newest_lineage")
    if not newest:
        return None
    return env, {
        "run_id": newest["run_id"],
        "lineage": newest["lineage"],
        "tracking_uri": record.settings.mlflow_tracking_uri,
    }


@pytest.mark.timeout(600)
def test_link_on_task_page_of_the_demo_run(chromium, tmp_path):
    """The record_lineage task of a real fraud_detection run links to its MLflow run."""
    found = _state_of_a_demo_run()
    if found is None:
        pytest.skip(
            f"no fraud_detection run with lineage in the local stack (run `make demo`, or set {DEMO_STATE_ENV})"
        )
    env, state = found
    lineage = state["lineage"]
    _check_task_page(
        chromium,
        tmp_path,
        env,
        dag_id="fraud_detection",
        run_id=state["run_id"],
        task_id="record_lineage",
        expected_href=f"{state['tracking_uri']}/#/experiments/{lineage['mlflow_experiment_id']}/runs/{lineage['mlflow_run_id']}",
    )
