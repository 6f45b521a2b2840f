"""PachydermHook and MLflowHook configuration paths.

Connections come from AIRFLOW_CONN_* variables as in production. The Kubernetes path is tested
against a stand-in Kubernetes API server (a tiny local HTTP server answering the Service GET),
because no Kubernetes cluster runs here; the pachd it points at is the real pachd-lite when
that fixture is available.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from pachflow.exceptions import ConfigurationError
from pachflow.hooks.mlflow import MLflowHook
from pachflow.hooks.pachyderm import PachydermConnectionError, PachydermHook, parse_pachd_address
from tests.fixtures.airflow import airflow_connections, pachyderm_conn


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_fields_make_the_endpoint():
    conn = {
        "conn_type": "pachyderm",
        "host": "pachd.example",
        "port": 31400,
        "password": "tok",
        "extra": {"project": "fraud", "tls": True},
    }
    with airflow_connections(pachyderm_default=conn):
        hook = PachydermHook()
        ep = hook.endpoint
    assert (ep.host, ep.port, ep.tls, ep.auth_token, ep.project) == (
        "pachd.example",
        31400,
        True,
        "tok",
        "fraud",
    )
    assert hook.address == "grpcs://pachd.example:31400"


def test_tls_extra_as_string_and_project_override():
    conn = {"conn_type": "pachyderm", "host": "h", "extra": {"tls": "false", "project": "p"}}
    with airflow_connections(pachyderm_default=conn):
        hook = PachydermHook(project="other")
        assert hook.endpoint.tls is False
        assert hook.endpoint.port == 30650
        assert hook.project == "other"
        assert hook.project_is_explicit and hook.endpoint.project_from == "the task's project argument"
        from_conn = PachydermHook()
        assert from_conn.project == "p" and from_conn.project_is_explicit
        assert from_conn.endpoint.project_from == "the 'project' extra of connection 'pachyderm_default'"


def test_a_tls_extra_that_is_not_a_bool_names_the_connection():
    conn = {"conn_type": "pachyderm", "host": "h", "extra": {"tls": "maybe"}}
    with airflow_connections(pachyderm_default=conn):
        with pytest.raises(
            ConfigurationError, match="connection 'pachyderm_default' extra tls must be true or false"
        ):
            _ = PachydermHook().endpoint


def test_without_a_project_anywhere_the_project_is_pachds_default_and_not_explicit():
    with airflow_connections(pachyderm_default={"conn_type": "pachyderm", "host": "h"}):
        hook = PachydermHook()
        assert (hook.project, hook.project_is_explicit, hook.endpoint.project_from) == ("default", False, "")


def test_tls_client_gets_root_certs_and_plain_client_none():
    port = _closed_port()
    with airflow_connections(pachyderm_default=pachyderm_conn("127.0.0.1", port, tls=True)):
        secure = PachydermHook().client
    with airflow_connections(pachyderm_default=pachyderm_conn("127.0.0.1", port)):
        plain = PachydermHook().client
    # The SDK opens a secure channel exactly when it holds root certificates (certifi's when none given).
    assert secure.root_certs and b"BEGIN CERTIFICATE" in secure.root_certs
    assert plain.root_certs is None
    assert secure.address == plain.address == f"127.0.0.1:{port}"


def test_pachd_address_env_is_used_without_a_connection(monkeypatch):
    monkeypatch.setenv("PACHD_ADDRESS", "grpcs://pachd.svc:1650")
    hook = PachydermHook("missing_conn")
    assert (hook.endpoint.host, hook.endpoint.port, hook.endpoint.tls) == ("pachd.svc", 1650, True)
    assert hook.endpoint.source == "PACHD_ADDRESS"


def test_no_connection_and_no_env_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("PACHD_ADDRESS", raising=False)
    with pytest.raises(PachydermConnectionError, match="missing_conn.*PACHD_ADDRESS"):
        _ = PachydermHook("missing_conn").endpoint


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("localhost:30650", ("localhost", 30650, False)),
        ("grpc://a:1", ("a", 1, False)),
        ("https://b:2", ("b", 2, True)),
        ("c", ("c", 30650, False)),
    ],
)
def test_parse_pachd_address(address, expected):
    assert parse_pachd_address(address) == expected


@pytest.mark.parametrize("bad", ["ftp://a:1", "grpc://a:1/path", "grpc://u@a:1"])
def test_parse_pachd_address_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="pachd address"):
        parse_pachd_address(bad)


def test_unreachable_pachd_error_names_the_address():
    port = _closed_port()
    with airflow_connections(pachyderm_default=pachyderm_conn("127.0.0.1", port)):
        hook = PachydermHook(retry_attempts=2, retry_max_wait=0.1)
        ok, message = hook.test_connection()
        assert not ok
        assert f"grpc://127.0.0.1:{port}" in message
        with pytest.raises(PachydermConnectionError, match=f"127.0.0.1:{port}"):
            hook.get_conn()


def test_transient_errors_are_retried_then_succeed():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("Could not connect to pachyderm instance")
        return "ok"

    with airflow_connections(pachyderm_default=pachyderm_conn("127.0.0.1", 1)):
        hook = PachydermHook(retry_attempts=4, retry_max_wait=0.01)
        assert hook.call(flaky) == "ok"
    assert len(calls) == 3


def test_non_transient_errors_are_not_retried():
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("bad request")

    with airflow_connections(pachyderm_default=pachyderm_conn("127.0.0.1", 1)):
        with pytest.raises(ValueError):
            PachydermHook(retry_attempts=4, retry_max_wait=0.01).call(broken)
    assert len(calls) == 1


class _StandInKubernetesApi:
    """Answers GET /api/v1/namespaces/<ns>/services/<name> like the Kubernetes API server would."""

    def __init__(self, services: dict[tuple[str, str], dict]):
        self.services = services
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                outer.requests.append(self.path)
                parts = self.path.split("?")[0].strip("/").split("/")
                key = (parts[3], parts[5]) if len(parts) == 6 and parts[4] == "services" else None
                body = outer.services.get(key)
                status = 200 if body else 404
                payload = body or {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kubeconfig(self) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "standin",
                "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
                "contexts": [
                    {"name": "standin", "context": {"cluster": "standin", "user": "u", "namespace": "pach"}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )

    def close(self):
        self.server.shutdown()


def _service(name: str, ns: str, ip: str, port: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "clusterIP": ip,
            "type": "ClusterIP",
            "ports": [
                {"name": "s3gateway-port", "port": 1600, "protocol": "TCP"},
                {"name": "api-grpc-port", "port": port, "protocol": "TCP"},
            ],
        },
    }


def _kubernetes_connections(api: _StandInKubernetesApi, tmp_path) -> dict[str, dict]:
    """A `kubernetes` connection to the stand-in API and a `pachyderm_default` that looks pachd up through it."""
    kube = tmp_path / "kubeconfig"
    kube.write_text(api.kubeconfig())
    return {
        "k8s": {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kube)}},
        "pachyderm_default": {
            "conn_type": "pachyderm",
            "extra": {"kubernetes_conn_id": "k8s", "namespace": "pach"},
        },
    }


def test_kubernetes_service_lookup_through_standin_api(tmp_path):
    api = _StandInKubernetesApi({("pach", "pachd"): _service("pachd", "pach", "10.1.2.3", 1650)})
    try:
        with airflow_connections(**_kubernetes_connections(api, tmp_path)):
            ep = PachydermHook().endpoint
    finally:
        api.close()
    assert (ep.host, ep.port) == ("10.1.2.3", 1650)
    assert "via Kubernetes 'k8s'" in ep.source
    assert api.requests and api.requests[0].startswith("/api/v1/namespaces/pach/services/pachd")


def test_kubernetes_missing_service_is_a_clear_error(tmp_path):
    api = _StandInKubernetesApi({})
    try:
        with (
            airflow_connections(**_kubernetes_connections(api, tmp_path)),
            pytest.raises(PachydermConnectionError, match="pach/pachd"),
        ):
            _ = PachydermHook().endpoint
    finally:
        api.close()


@pytest.mark.parametrize(
    ("fields", "uri"),
    [
        ({"host": "mlflow", "port": 5000, "schema": "http"}, "http://mlflow:5000"),
        ({"host": "mlflow.example", "schema": "https"}, "https://mlflow.example"),
        ({"host": "http://127.0.0.1:5001/"}, "http://127.0.0.1:5001"),
        ({"host": "m", "port": 80, "schema": "mlflow"}, "http://m:80/mlflow"),
    ],
)
def test_mlflow_tracking_uri_from_http_connection(fields, uri):
    with airflow_connections(mlflow_default={"conn_type": "http", **fields}):
        assert MLflowHook().tracking_uri == uri


def test_mlflow_basic_auth_credentials():
    with airflow_connections(
        mlflow_default={"conn_type": "http", "host": "m", "login": "u", "password": "p" * 12}
    ):
        assert MLflowHook().credentials() == {
            "MLFLOW_TRACKING_USERNAME": "u",
            "MLFLOW_TRACKING_PASSWORD": "p" * 12,
        }


def test_calls_ride_out_a_pachd_restart(pachd_factory):
    """A real pachd-lite goes away and comes back on the same port: the retried call succeeds."""
    server = pachd_factory()
    with airflow_connections(pachyderm_default=pachyderm_conn(server.host, server.port)):
        hook = PachydermHook(retry_attempts=10, retry_max_wait=1.0)
        hook.check_connection()
        server.kill()
        restarter = threading.Timer(1.0, server.start)
        restarter.start()
        version = hook.call(hook.client.get_version)
        restarter.join()
    assert version.major == 2


def test_test_connection_against_pachd_lite(pachd_server):
    with airflow_connections(pachyderm_default=pachyderm_conn(pachd_server.host, pachd_server.port)):
        ok, message = PachydermHook().test_connection()
    assert ok, message
    assert (
        message.startswith("Connected to pachd 2.") and f"{pachd_server.host}:{pachd_server.port}" in message
    )
