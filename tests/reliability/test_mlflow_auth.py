"""MLflow with basic auth (``mlflow server --app-name basic-auth``, reference mlflow §1g).

- the server refuses anonymous API calls and accepts the Airflow connection's login/password
  (through MLflowHook);
- the DAG's apply-pipelines operator turns the connection's login/password into a Pachyderm
  secret referenced by ``transform.secrets``: the pipeline spec holds only the secret's name;
- a real ml_train job on pachd-lite (the project's three specs applied by that operator, real
  Spark) logs to the server as that user, and the password appears nowhere: job logs and
  reason, pachd-lite and MLflow server logs, the pipeline spec, MLflow run params/tags, the
  output commit's files and metadata.
Needs Flask-WTF (the ``mlflow[auth]`` extra).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.mlflow_server import _free_port, _mlflow_executable

pytest.importorskip("flask_wtf", reason="mlflow basic-auth needs Flask-WTF (pip install 'mlflow[auth]')")

ADMIN_PASSWORD = "admin-Pw-4c1f9e2b77"  # >= 12 characters, as MLflow requires
USER, USER_PASSWORD = "pachflow-trainer", "trainer-Pw-91d3a0e5c4"


class AuthMlflow:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.tracking_uri = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "mlflow-auth.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AuthMlflow:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "basic_auth.ini"
        config.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = sqlite:///{self.root / 'basic_auth.db'}\n"
            "admin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key-" + os.urandom(8).hex(),
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        cmd = [
            *_mlflow_executable(), "server", "--app-name", "basic-auth",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, env=env, start_new_session=True
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow basic-auth server exited:\n{self.log_path.read_text()[-3000:]}")
            if self.api_status(("admin", ADMIN_PASSWORD)) == 200:
                return self
            time.sleep(0.5)
        raise RuntimeError(f"mlflow basic-auth server not ready:\n{self.log_path.read_text()[-3000:]}")

    def api_status(self, auth: tuple[str, str] | None) -> int:
        request = urllib.request.Request(
            f"{self.tracking_uri}/api/2.0/mlflow/experiments/search",
            data=json.dumps({"max_results": 1}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return 0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


@pytest.fixture(scope="module")
def auth_mlflow(tmp_path_factory) -> Iterator[AuthMlflow]:
    server = AuthMlflow(tmp_path_factory.mktemp("mlflow-auth")).start()
    try:
        from mlflow.server import get_app_client

        with pytest.MonkeyPatch.context() as env:
            env.setenv("MLFLOW_TRACKING_USERNAME", "admin")
            env.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
            get_app_client("basic-auth", tracking_uri=server.tracking_uri).create_user(USER, USER_PASSWORD)
        yield server
    finally:
        server.stop()


def test_server_refuses_anonymous_and_accepts_the_connection_login(auth_mlflow, monkeypatch):
    from pachflow.hooks.mlflow import MLflowHook
    from tests.fixtures.airflow import airflow_connections

    assert auth_mlflow.api_status(None) == 401
    assert auth_mlflow.api_status((USER, "wrong-password-123")) == 401
    assert auth_mlflow.api_status((USER, USER_PASSWORD)) == 200
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)  # get_conn() exports them; restored after the test
    conn = {"conn_type": "http", "host": "127.0.0.1", "port": auth_mlflow.port, "schema": "http"}
    with airflow_connections(mlflow_auth=dict(conn, login=USER, password=USER_PASSWORD)):
        hook = MLflowHook("mlflow_auth")
        assert USER_PASSWORD not in hook.tracking_uri
        hook.get_conn().search_experiments(max_results=1)  # raises on 401
        assert hook.test_connection()[0]


def _scan(haystacks: dict[str, str], secret: str) -> list[str]:
    return [where for where, text in haystacks.items() if secret in text]


def _apply_with_operator(pachd, mlflow_port: int, **env) -> dict:
    """Apply pachyderm_specs/ with the DAG's operator; the mlflow connection has the trainer's login."""
    from pachflow.operators.pipelines import PachydermApplyPipelinesOperator
    from tests.fixtures.airflow import airflow_connections, pachyderm_conn

    mlflow = {"conn_type": "http", "host": "127.0.0.1", "port": mlflow_port, "schema": "http"}
    with airflow_connections(
        pachyderm_default=pachyderm_conn(pachd.connect_host, pachd.port),
        mlflow_default=dict(mlflow, login=USER, password=USER_PASSWORD),
    ):
        op = PachydermApplyPipelinesOperator(
            task_id="apply",
            specs=str(Path(__file__).resolve().parents[2] / "pachyderm_specs"),
            mlflow_conn_id="mlflow_default",
            mlflow_pipelines=["ml_train"],
            env=env,
        )
        return op.execute({"ti": _TaskInstance()})


class _TaskInstance:
    """Just enough of a task instance for ``execute`` (a stand-in: no Airflow run needed to apply specs)."""

    def __init__(self) -> None:
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value


@pytest.mark.spark
def test_training_authenticates_and_no_secret_leaks(auth_mlflow, pachd_factory, tmp_path):
    from mlflow import MlflowClient
    from pachyderm_sdk.api import pfs, pps

    from spark_jobs.generate import GenerateConfig, generate

    pachd = pachd_factory()
    project = "default"
    result = _apply_with_operator(
        pachd,
        auth_mlflow.port,
        ml_train={"MLFLOW_EXPERIMENT_NAME": "auth-test", "MLFLOW_MODEL_NAME": "auth-test-model"},
        split_data={"SPLIT_BUCKETS": "2"},
    )
    assert set(result["actions"].values()) == {"created"}, result
    client = pachd.client()
    (day,) = generate(GenerateConfig(rows=3000, customers=600, days=1, seed=5, fraud_rate=0.03), tmp_path)
    with client.pfs.commit(branch=pfs.Branch.from_uri(f"{project}/raw_data@master")) as c:
        c.put_file_from_bytes(f"/{day.name}", day.read_bytes())
    client.pfs.wait_commit_set(pfs.CommitSet(id=c.id))
    job_ref = pps.Job(pipeline=pps.Pipeline(name="ml_train", project=pfs.Project(name=project)), id=c.id)
    job = client.pps.inspect_job(job=job_ref, wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason

    out = pfs.Commit.from_uri(f"{project}/ml_train@{c.id}")
    run_info = json.loads(
        client.pfs.pfs_file(pfs.File.from_uri(f"{project}/ml_train@{c.id}:/mlflow_run.json")).read()
    )
    mlflow_client = MlflowClient(auth_mlflow.tracking_uri)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        env.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        run = mlflow_client.get_run(run_info["run_id"])
    assert run.info.user_id == USER  # the run was logged with the connection's user, not anonymously
    assert run.data.tags["pachyderm.commit"] == c.id

    logs = "\n".join(m.message for m in client.pps.get_logs(job=job_ref))
    output_files = "\n".join(
        client.pfs.pfs_file(pfs.File.from_uri(f"{project}/ml_train@{c.id}:{i.file.path}"))
        .read()
        .decode(errors="replace")
        for i in client.pfs.walk_file(file=pfs.File.from_uri(f"{project}/ml_train@{c.id}:/"))
        if i.file_type == pfs.FileType.FILE
    )
    haystacks = {
        "ml_train job logs": logs,
        "ml_train job reason": job.reason,
        "ml_train output files": output_files,
        "ml_train commit metadata": json.dumps(dict(client.pfs.inspect_commit(commit=out).metadata)),
        "mlflow run tags": json.dumps(run.data.tags),
        "mlflow run params": json.dumps(run.data.params),
        "mlflow server log": auth_mlflow.log_path.read_text(errors="replace"),
        "pachd-lite log": pachd.log_path.read_text(errors="replace"),
        "ml_train pipeline spec": client.pps.inspect_pipeline(
            pipeline=pps.Pipeline(name="ml_train", project=pfs.Project(name=project)), details=True
        ).to_json(),
    }
    assert logs and "auth-test" in haystacks["mlflow run tags"] + logs + output_files
    assert _scan(haystacks, USER_PASSWORD) == []
    assert _scan(haystacks, ADMIN_PASSWORD) == []


def test_apply_pipelines_gives_ml_train_the_connection_credentials_without_exposing_them(pachd_factory):
    from pachyderm_sdk.api import pfs, pps

    pachd = pachd_factory()
    result = _apply_with_operator(pachd, 5000)  # applying specs does not talk to MLflow
    assert result["actions"] == {"split_data": "created", "etl": "created", "ml_train": "created"}, result
    client = pachd.client()
    info = client.pps.inspect_pipeline(
        pipeline=pps.Pipeline(name="ml_train", project=pfs.Project(name="default")), details=True
    )
    assert USER_PASSWORD not in info.to_json() and USER not in info.to_json()
    secrets = {(s.env_var, s.key) for s in info.details.transform.secrets}
    assert secrets == {("MLFLOW_TRACKING_USERNAME", "username"), ("MLFLOW_TRACKING_PASSWORD", "password")}
    listed = list(client.pps.list_secret().secret_info) if hasattr(client.pps, "list_secret") else []
    assert USER_PASSWORD not in repr(listed)
