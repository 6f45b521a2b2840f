"""docker-compose.yaml and the Dockerfile cannot run here (no Docker engine): check them statically.

Every referenced file and folder exists, every dependency is a service, the Airflow services carry
the settings Airflow 3 needs, and the connections point at the right service names and ports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.local.compose_model import (
    ComposeError,
    bind_mounts,
    command_of,
    depends_on,
    env_of,
    flag_value,
    interpolate,
    load_compose,
    named_volumes,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
AIRFLOW_COMMANDS = {"api-server", "scheduler", "dag-processor", "triggerer"}
REQUIRED_AIRFLOW_ENV = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW_CONN_PACHYDERM_DEFAULT",
    "AIRFLOW_CONN_MLFLOW_DEFAULT",
)
MOUNTED_PROJECT_FOLDERS = ("dags", "plugins", "spark_jobs", "example_pipelines", "pachyderm_specs", "data")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def airflow_services(services: dict[str, dict]) -> dict[str, dict]:
    """Services that run an Airflow component (by their command) or the DB migration."""
    return {
        name: service
        for name, service in services.items()
        if (command_of(service)[:1] and command_of(service)[0] in AIRFLOW_COMMANDS | {"db"})
    }


def service_by_command(services: dict[str, dict], command: str) -> str:
    names = [name for name, svc in services.items() if command_of(svc)[:1] == [command]]
    assert len(names) == 1, f"expected one service running `{command}`, found {names}"
    return names[0]


def test_build_contexts_and_dockerfiles_exist(services):
    built = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    assert built, "no service builds the pachflow image"
    for name, build in built.items():
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), f"service {name}: build context {context} does not exist"
        dockerfile = context / (
            build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
        )
        assert dockerfile.is_file(), f"service {name}: {dockerfile} does not exist"
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"service {name} has neither image nor build"


def test_bind_mounts_exist_and_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for source, target in bind_mounts(svc, include_created=False):
            assert (ROOT / source).exists(), f"service {name}: mounted {source} does not exist"
            assert target.startswith("/"), f"service {name}: mount target {target!r} is not absolute"
        for volume in named_volumes(svc):
            assert volume in declared, f"service {name}: volume {volume!r} not declared under `volumes:`"


def test_every_dependency_is_a_service(services):
    valid = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in services.items():
        for dep, condition in depends_on(svc).items():
            assert dep in services, f"service {name} depends on unknown service {dep!r}"
            assert condition in valid, f"service {name}: unknown depends_on condition {condition!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], (
                    f"{name} waits for {dep} to be healthy; it has no healthcheck"
                )


def test_airflow_3_components_are_all_there(services):
    commands = {command_of(svc)[0] for svc in services.values() if command_of(svc)}
    assert AIRFLOW_COMMANDS <= commands, f"missing Airflow components: {AIRFLOW_COMMANDS - commands}"
    init = service_by_command(services, "db")
    assert command_of(services[init])[:2] == ["db", "migrate"]
    for name, svc in airflow_services(services).items():
        if name != init:
            assert depends_on(svc).get(init) == "service_completed_successfully", (
                f"{name} must wait for {init} (database migration)"
            )


def test_airflow_services_have_required_settings_and_project_mounts(services):
    for name, svc in airflow_services(services).items():
        env = env_of(svc)
        missing = [key for key in REQUIRED_AIRFLOW_ENV if not env.get(key)]
        assert not missing, f"service {name}: environment lacks {missing}"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
        targets = {source.rstrip("/").removeprefix("./"): target for source, target in bind_mounts(svc)}
        for folder in MOUNTED_PROJECT_FOLDERS:
            assert folder in targets, f"service {name}: ./{folder} is not mounted"
        assert targets["dags"] == env["AIRFLOW__CORE__DAGS_FOLDER"], (
            f"service {name}: dags mount != DAGS_FOLDER"
        )
        # The editable install in the image imports pachflow from /opt/pachflow/plugins.
        assert targets["plugins"] == "/opt/pachflow/plugins", f"service {name}: plugins mount"
        # ... and Airflow must not load that folder as plugins (each file would become a top-level
        # module: pachflow/hooks/mlflow.py would shadow the mlflow package).
        plugins_folder = env["AIRFLOW__CORE__PLUGINS_FOLDER"].rstrip("/")
        assert not plugins_folder.startswith("/opt/pachflow"), (
            f"service {name}: PLUGINS_FOLDER {plugins_folder}"
        )


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port


def test_database_and_execution_api_urls_point_at_services(services):
    apiserver = service_by_command(services, "api-server")
    for name, svc in airflow_services(services).items():
        env = env_of(svc)
        db_url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        host, port = _host_port(db_url)
        assert host in services, f"{name}: Airflow database host {host!r} is not a service"
        db_env = env_of(services[host])
        parts = urlsplit(db_url)
        assert (parts.username, parts.password, parts.path.lstrip("/")) == (
            db_env["POSTGRES_USER"],
            db_env["POSTGRES_PASSWORD"],
            db_env["POSTGRES_DB"],
        ), f"{name}: Airflow database credentials differ from service {host}'s"
        assert port in (None, 5432)
        exec_host, exec_port = _host_port(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert exec_host == apiserver, f"{name}: execution API should be served by {apiserver}"
        published = [p.split(":")[-1] for p in services[apiserver].get("ports", [])]
        assert str(exec_port) in published, f"{name}: execution API port {exec_port} is not the api-server's"


def test_pachyderm_connection_points_at_pachd_lite_with_its_token(services):
    pachd = services["pachd-lite"]
    args = command_of(pachd)
    assert args[:2] == ["pachd-lite", "serve"]
    assert flag_value(args, "--host") == "0.0.0.0", "pachd-lite must listen beyond loopback in a container"
    token = env_of(pachd).get("PACHD_LITE_AUTH_TOKEN")
    assert token, "pachd-lite refuses a non-loopback bind without PACHD_LITE_AUTH_TOKEN"
    for name, svc in airflow_services(services).items():
        conn = json.loads(env_of(svc)["AIRFLOW_CONN_PACHYDERM_DEFAULT"])
        assert conn["conn_type"] == "pachyderm"
        assert conn["host"] == "pachd-lite", f"{name}: pachyderm_default host {conn['host']!r}"
        assert str(conn["port"]) == flag_value(args, "--port"), f"{name}: pachyderm_default port"
        assert conn["password"] == token, f"{name}: pachyderm_default password is not pachd-lite's token"
        assert conn["extra"]["project"]


def test_mlflow_connection_points_at_mlflow_which_accepts_its_service_name(services):
    mlflow = services["mlflow"]
    args = command_of(mlflow)
    assert args[:2] == ["mlflow", "server"]
    allowed = (flag_value(args, "--allowed-hosts") or "").split(",")
    assert "mlflow" in allowed and "mlflow:*" in allowed, "MLflow would answer 403 to Host: mlflow:5000"
    assert flag_value(args, "--artifacts-destination"), "artifacts should be proxied by the server"
    backend_host, _ = _host_port(flag_value(args, "--backend-store-uri") or "")
    assert backend_host in services and backend_host != "postgres", "MLflow needs its own Postgres service"
    backend = urlsplit(flag_value(args, "--backend-store-uri"))
    assert backend.password == env_of(services[backend_host])["POSTGRES_PASSWORD"]
    for name, svc in airflow_services(services).items():
        conn = json.loads(env_of(svc)["AIRFLOW_CONN_MLFLOW_DEFAULT"])
        assert (conn["conn_type"], conn["schema"], conn["host"]) == ("http", "http", "mlflow"), name
        assert str(conn["port"]) == flag_value(args, "--port"), f"{name}: mlflow_default port"
    assert (
        env_of(services["pachd-lite"])["MLFLOW_TRACKING_URI"] == f"http://mlflow:{flag_value(args, '--port')}"
    )


def test_connection_strings_are_valid_airflow_connections(services):
    """Airflow itself parses both connection variables (JSON form) into the expected fields."""
    from airflow.models.connection import Connection

    env = env_of(services[service_by_command(services, "scheduler")])
    pachd = Connection.from_json(env["AIRFLOW_CONN_PACHYDERM_DEFAULT"], conn_id="pachyderm_default")
    assert (pachd.conn_type, pachd.host, pachd.port) == ("pachyderm", "pachd-lite", 30650)
    mlflow = Connection.from_json(env["AIRFLOW_CONN_MLFLOW_DEFAULT"], conn_id="mlflow_default")
    assert (mlflow.host, mlflow.port, mlflow.schema) == ("mlflow", 5000, "http")


def test_an_overridden_token_reaches_both_sides():
    services = load_compose(COMPOSE_FILE, env={"PACHD_LITE_AUTH_TOKEN": "s3cret-token"})["services"]
    assert env_of(services["pachd-lite"])["PACHD_LITE_AUTH_TOKEN"] == "s3cret-token"
    conn = json.loads(env_of(services["airflow-scheduler"])["AIRFLOW_CONN_PACHYDERM_DEFAULT"])
    assert conn["password"] == "s3cret-token"


def test_dockerfile_builds_on_the_pinned_airflow_with_java_and_the_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pinned, "requirements.txt does not pin apache-airflow"
    assert f"ARG AIRFLOW_VERSION={pinned.group(1)}" in dockerfile
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}", dockerfile, re.M)
    assert "-r /opt/pachflow/requirements.txt" in dockerfile
    assert re.search(r"pip install .*-e /opt/pachflow", dockerfile), (
        "the package (provider entry point) is not installed"
    )
    assert "jre-headless" in dockerfile, "no Java for Spark"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".local", ".git", ".env"):
        assert entry in ignored, f".dockerignore should exclude {entry}"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A}", {"A": "v"}, "v"),
        ("$${HOSTNAME}", {}, "${HOSTNAME}"),
    ],
)
def test_interpolation_follows_compose(text, env, expected):
    assert interpolate(text, env) == expected


def test_a_required_variable_without_value_is_an_error():
    with pytest.raises(ComposeError, match="TOKEN is required"):
        interpolate("${TOKEN:?set it in .env}", {})
