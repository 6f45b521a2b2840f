"""A task whose pachd or MLflow stays unreachable through the hook's own retries fails once, for good:
no Airflow retry (which would only wait its retry delay and fail the same way), and the message names
the address. A pachd that comes back within the hook's retry budget is ridden out by the same try."""

from __future__ import annotations

import threading
import time

import pendulum
from airflow.sdk import DAG

from pachflow.hooks.unreachable import TASK_RETRY_SECONDS
from pachflow.operators.files import PachydermPutFilesOperator
from pachflow.operators.rollback import PachydermRollbackOperator
from tests.fixtures.airflow import airflow_connections, mlflow_conn, pachyderm_conn
from tests.fixtures.pachd import PachdProcess, free_port, unique_name

START = pendulum.datetime(2026, 1, 1, tz="UTC")
# With an Airflow retry the run would wait this long for a second try that fails the same way.
RETRIES = {"retries": 2, "retry_delay": pendulum.duration(seconds=30)}


def _push_dag(source) -> DAG:
    with DAG(unique_name("unreachable"), schedule=None, start_date=START, default_args=RETRIES) as dag:
        PachydermPutFilesOperator(task_id="push", source=str(source), repo=unique_name("raw"))
    return dag


def test_push_to_an_unreachable_pachd_fails_once_naming_the_address(run_dag, tmp_path, capsys):
    from airflow.utils.state import TaskInstanceState

    (tmp_path / "a.csv").write_text("x\n1\n")
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with airflow_connections(pachyderm_default=pachyderm_conn("127.0.0.1", port)):
        dr = run_dag(_push_dag(tmp_path / "a.csv"))
    took = time.monotonic() - started
    ti = dr.get_task_instance("push")
    assert ti.state == TaskInstanceState.FAILED and ti.try_number == 1, (ti.state, ti.try_number)
    out = capsys.readouterr().out
    assert f"Cannot reach pachd at grpc://127.0.0.1:{port}" in out, out[-3000:]
    assert "not retrying the task" in out
    assert took >= TASK_RETRY_SECONDS, took  # the hook's own retries were spent first


def test_a_pachd_back_within_the_hooks_budget_is_ridden_out_by_the_same_try(run_dag, tmp_path):
    from airflow.utils.state import TaskInstanceState

    (tmp_path / "a.csv").write_text("x\n1\n")
    pachd = PachdProcess(tmp_path / "pachd")  # its port is chosen; the server starts late
    starter = threading.Timer(5.0, pachd.start)
    try:
        with airflow_connections(pachyderm_default=pachyderm_conn("127.0.0.1", pachd.port)):
            starter.start()
            dr = run_dag(_push_dag(tmp_path / "a.csv"))
        ti = dr.get_task_instance("push")
        assert ti.state == TaskInstanceState.SUCCESS and ti.try_number == 1, (ti.state, ti.try_number)
    finally:
        starter.join()
        pachd.stop()


def test_rollback_with_mlflow_unreachable_fails_once_naming_the_address(run_dag, capsys, monkeypatch):
    from airflow.utils.state import TaskInstanceState

    # MLflow's own retries are the hook's budget here; none, to keep the test short.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://127.0.0.1:{free_port()}"
    with DAG(unique_name("unreachable"), schedule=None, start_date=START, default_args=RETRIES) as dag:
        PachydermRollbackOperator(task_id="rollback", model_name="m", alias="a", to_run_id="0" * 32)
    with airflow_connections(mlflow_default=mlflow_conn(uri)):
        dr = run_dag(dag)
    ti = dr.get_task_instance("rollback")
    assert ti.state == TaskInstanceState.FAILED and ti.try_number == 1, (ti.state, ti.try_number)
    out = capsys.readouterr().out
    assert uri in out and "not retrying the task" in out, out[-3000:]


def test_a_pachd_call_whose_retries_ran_out_mid_task_is_named_as_unavailable():
    from pachyderm_sdk import Client

    from pachflow.hooks.unreachable import unreachable_reason

    port = free_port()
    try:
        list(Client(host="127.0.0.1", port=port).pfs.list_repo())
    except Exception as err:  # what a hook.call() re-raises once its retries are spent
        with airflow_connections(pachyderm_default=pachyderm_conn("127.0.0.1", port)):
            reason = unreachable_reason(err, "pachyderm_default")
    else:
        raise AssertionError(f"nothing listens on {port}, yet list_repo answered")
    assert reason is not None
    expected = f"pachd at grpc://127.0.0.1:{port} (connection 'pachyderm_default') stayed unavailable"
    assert reason.startswith(expected), reason
    assert unreachable_reason(ValueError("bad setting")) is None


def test_classifying_a_skip_does_not_import_mlflow():
    """A skipped task goes through the same check; importing mlflow for it cost ~1 s per task."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from airflow.sdk.exceptions import AirflowSkipException\n"
        "from pachflow.hooks.unreachable import no_retry_when_unreachable\n"
        "@no_retry_when_unreachable\n"
        "def execute():\n"
        "    raise AirflowSkipException('nothing new')\n"
        "try:\n"
        "    execute()\n"
        "except AirflowSkipException:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out
