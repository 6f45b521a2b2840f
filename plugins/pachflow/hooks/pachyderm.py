"""PachydermHook: a pachyderm_sdk Client built from an Airflow connection.

Where the pachd address comes from, in order:

1. the Airflow connection (type ``pachyderm``): host, port, ``tls`` and ``project`` extras,
   auth token in the password; or, with the ``kubernetes_conn_id`` (+ ``namespace``,
   ``service``, ``port_name``) extras, the pachd Service found through that Kubernetes
   connection;
2. when that connection does not exist: the ``PACHD_ADDRESS`` environment variable
   (``[grpc|grpcs|http|https://]host:port``), as the Go client and pachctl read it.

The SDK issues no RPC when a client is built, so :meth:`PachydermHook.check_connection`
asks pachd for its version and fails with an error naming the address. Calls that go
through :meth:`PachydermHook.call` are retried with exponential backoff while pachd answers
UNAVAILABLE (restarts, port-forward hiccups).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook

from pachflow.exceptions import PachydermConnectionError, one_line
from pachflow.settings import as_bool

if TYPE_CHECKING:
    from pachyderm_sdk import Client

DEFAULT_PORT = 30650
DEFAULT_PROJECT = "default"
T = TypeVar("T")


@dataclass(frozen=True)
class PachdEndpoint:
    """Where pachd listens and how to talk to it."""

    host: str
    port: int
    tls: bool = False
    auth_token: str | None = None
    project: str = DEFAULT_PROJECT
    source: str = ""
    # what set ``project`` (the task's argument, the connection's extra); "" = pachd's default
    project_from: str = ""

    @property
    def address(self) -> str:
        scheme = "grpcs" if self.tls else "grpc"
        return f"{scheme}://{self.host}:{self.port}"


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: pachd unreachable or answering UNAVAILABLE."""
    import grpc

    if isinstance(error, PachydermConnectionError):
        return False
    if isinstance(error, ConnectionError):  # the SDK maps "failed to connect" to ConnectionError
        return True
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
    return False


def parse_pachd_address(address: str) -> tuple[str, int, bool]:
    """Split ``[scheme://]host:port`` into host, port and TLS, as ``Client.from_pachd_address`` does."""
    from urllib.parse import urlsplit

    text = address.strip()
    if "://" not in text:
        text = "grpc://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("grpc", "grpcs", "http", "https"):
        raise ValueError(f"pachd address {address!r}: scheme must be grpc, grpcs, http or https")
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"pachd address {address!r}: only [scheme://]host:port is allowed")
    if not parts.hostname:
        raise ValueError(f"pachd address {address!r}: no host")
    return parts.hostname, parts.port or DEFAULT_PORT, scheme in ("grpcs", "https")


class PachydermHook(BaseHook):
    """Talk to pachd (a real cluster or pachd-lite) through ``pachyderm_sdk``.

    :param pachyderm_conn_id: Airflow connection of type ``pachyderm``.
    :param project: Pachyderm project; overrides the connection's ``project`` extra.
    :param retry_attempts: attempts for calls made through :meth:`call` while pachd is UNAVAILABLE.
    :param retry_max_wait: upper bound in seconds of the exponential backoff between attempts.
    :param retry_for_seconds: when set, keep retrying for this long instead of ``retry_attempts``
        times (long waits should outlast a pachd restart).
    """

    conn_name_attr = "pachyderm_conn_id"
    default_conn_name = "pachyderm_default"
    conn_type = "pachyderm"
    hook_name = "Pachyderm"

    def __init__(
        self,
        pachyderm_conn_id: str = default_conn_name,
        *,
        project: str | None = None,
        retry_attempts: int = 5,
        retry_max_wait: float = 8.0,
        retry_for_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pachyderm_conn_id = pachyderm_conn_id
        self._project_override = project
        self.retry_attempts = retry_attempts
        self.retry_max_wait = retry_max_wait
        self.retry_for_seconds = retry_for_seconds

    # -- configuration ------------------------------------------------------------------------
    @cached_property
    def endpoint(self) -> PachdEndpoint:
        """Resolve the pachd endpoint from the connection, Kubernetes or PACHD_ADDRESS."""
        conn = self._find_connection()
        if conn is None:
            env_address = os.environ.get("PACHD_ADDRESS")
            if not env_address:
                raise PachydermConnectionError(
                    f"No Airflow connection {self.pachyderm_conn_id!r} and no PACHD_ADDRESS environment "
                    "variable: tell pachflow where pachd is (e.g. `pachflow local up` writes the connection)."
                )
            host, port, tls = parse_pachd_address(env_address)
            return PachdEndpoint(
                host=host,
                port=port,
                tls=tls,
                auth_token=os.environ.get("PACH_PYTHON_AUTH_TOKEN") or None,
                project=self._project_override or DEFAULT_PROJECT,
                source="PACHD_ADDRESS",
                project_from=self._project_from({}),
            )
        extra = conn.extra_dejson
        project = self._project_override or extra.get("project") or DEFAULT_PROJECT
        project_from = self._project_from(extra)
        tls = as_bool(f"connection {self.pachyderm_conn_id!r} extra tls", extra.get("tls"))
        token = conn.password or None
        if extra.get("kubernetes_conn_id"):
            host, port = self._resolve_kubernetes_service(extra)
            return PachdEndpoint(
                host=host,
                port=port,
                tls=tls,
                auth_token=token,
                project=project,
                source=f"connection {self.pachyderm_conn_id!r} via Kubernetes {extra['kubernetes_conn_id']!r}",
                project_from=project_from,
            )
        if not conn.host:
            raise PachydermConnectionError(f"Airflow connection {self.pachyderm_conn_id!r} has no host")
        host, port = conn.host, conn.port
        if "://" in host:  # a full address typed into the host field
            host, parsed_port, parsed_tls = parse_pachd_address(host)
            port, tls = port or parsed_port, tls or parsed_tls
        return PachdEndpoint(
            host=host,
            port=int(port or DEFAULT_PORT),
            tls=tls,
            auth_token=token,
            project=project,
            source=f"connection {self.pachyderm_conn_id!r}",
            project_from=project_from,
        )

    def _project_from(self, extra: dict[str, Any]) -> str:
        if self._project_override:
            return "the task's project argument"
        if extra.get("project"):
            return f"the 'project' extra of connection {self.pachyderm_conn_id!r}"
        return ""

    def _find_connection(self):
        from pachflow.hooks.connections import find_connection

        return find_connection(self, self.pachyderm_conn_id)

    def _resolve_kubernetes_service(self, extra: dict[str, Any]) -> tuple[str, int]:
        """Find pachd's Service through the cncf-kubernetes KubernetesHook: (cluster IP or DNS, port)."""
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        k8s = KubernetesHook(conn_id=extra["kubernetes_conn_id"])
        namespace = extra.get("namespace") or k8s.get_namespace() or "default"
        name = extra.get("service") or "pachd"
        port_name = extra.get("port_name") or "api-grpc-port"
        try:
            service = k8s.core_v1_client.read_namespaced_service(name=name, namespace=namespace)
        except Exception as err:
            raise PachydermConnectionError(
                f"Cannot read Service {namespace}/{name} through Kubernetes connection "
                f"{extra['kubernetes_conn_id']!r}: {err}"
            ) from err
        ports = list(service.spec.ports or [])
        if not ports:
            raise PachydermConnectionError(f"Service {namespace}/{name} exposes no ports")
        chosen = next((p for p in ports if p.name == port_name), ports[0])
        cluster_ip = service.spec.cluster_ip
        host = cluster_ip if cluster_ip and cluster_ip != "None" else f"{name}.{namespace}.svc"
        self.log.info(
            "Found pachd Service %s/%s at %s:%s (port %s)", namespace, name, host, chosen.port, chosen.name
        )
        return host, int(chosen.port)

    @property
    def address(self) -> str:
        return self.endpoint.address

    @property
    def project(self) -> str:
        """The task's project: its ``project`` argument, else the connection's extra, else ``default``."""
        return self.endpoint.project

    @property
    def project_is_explicit(self) -> bool:
        """True when the project was set by the task or the connection (not pachd's ``default``)."""
        return bool(self.endpoint.project_from)

    # -- client -------------------------------------------------------------------------------
    @cached_property
    def client(self) -> Client:
        from pachyderm_sdk import Client

        ep = self.endpoint
        return Client(host=ep.host, port=ep.port, auth_token=ep.auth_token, tls=ep.tls)

    def get_conn(self) -> Client:
        """Return a connected client (connectivity checked once)."""
        self.check_connection()
        return self.client

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)``, retrying with exponential backoff while pachd is UNAVAILABLE."""
        from tenacity import (
            Retrying,
            retry_if_exception,
            stop_after_attempt,
            stop_after_delay,
            wait_exponential,
        )

        if self.retry_for_seconds:
            stop, budget = stop_after_delay(self.retry_for_seconds), f"{self.retry_for_seconds:g} s"
        else:
            stop, budget = stop_after_attempt(self.retry_attempts), f"{self.retry_attempts} attempts"
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop,
            wait=wait_exponential(multiplier=0.25, max=self.retry_max_wait),
            before_sleep=lambda state: self.log.warning(
                "pachd at %s unavailable (attempt %d, retrying for up to %s): %s",
                self.address,
                state.attempt_number,
                budget,
                state.outcome.exception() if state.outcome else "",
            ),
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)

    def check_connection(self) -> str:
        """Ask pachd for its version; raise :class:`PachydermConnectionError` naming the address."""
        if getattr(self, "_checked_version", None):
            return self._checked_version
        try:
            version = self.call(self.client.get_version)
        except Exception as err:
            raise PachydermConnectionError(
                f"Cannot reach pachd at {self.address} ({self.endpoint.source}): {one_line(err)}"
            ) from err
        self._checked_version = f"{version.major}.{version.minor}.{version.micro}{version.additional}"
        return self._checked_version

    def test_connection(self) -> tuple[bool, str]:
        """Back the Airflow UI's "Test" button. The message names the address from the form, not the
        connection id: Airflow tests under a random temporary id."""
        try:
            endpoint = self.endpoint
        except PachydermConnectionError as err:
            return False, str(err).replace(
                f"Airflow connection {self.pachyderm_conn_id!r}", "This connection"
            )
        try:
            version = self.check_connection()
        except PachydermConnectionError as err:
            return False, f"Cannot reach pachd at {endpoint.address}: {one_line(err.__cause__ or err)}"
        return True, f"Connected to pachd {version} at {endpoint.address}"

    def close(self) -> None:
        """Close the gRPC channel if a client was built."""
        client = self.__dict__.pop("client", None)
        if client is not None:
            channel = getattr(client, "_channel", None)
            if channel is not None:
                channel.close()
