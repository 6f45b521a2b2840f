"""Probes that tell whether a service really serves its API (not only that its port is open)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable


class ServiceNotReady(RuntimeError):
    """A service did not answer its API in time, or its process exited."""


def probe_pachd(host: str, port: int, *, auth_token: str | None = None, timeout: float = 3.0) -> str:
    """Ask pachd (or pachd-lite) for its version through the unmodified pachyderm_sdk client.

    Returns the version string; raises on any failure.
    """
    import grpc
    from pachyderm_sdk import Client

    # The SDK's stubs take no deadline, so a server that accepts but never answers would block:
    # wait (bounded) for a plain channel to connect first, then make the real API call.
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ConnectionError(f"no gRPC connection to {host}:{port} within {timeout:.0f}s") from None
    version = Client(host=host, port=port, auth_token=auth_token).get_version()
    return f"{version.major}.{version.minor}.{version.micro}"


def probe_mlflow(tracking_uri: str, *, timeout: float = 3.0) -> int:
    """Call MLflow's REST API (experiments search), which — unlike /health — also fails when the
    server rejects our Host header or its database is unusable. Returns the number of experiments
    seen (0 or 1)."""
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = json.load(response)
    return len(body.get("experiments", []))


def wait_until_ready(
    probe: Callable[[], object],
    *,
    name: str,
    timeout: float,
    still_running: Callable[[], bool],
    on_attempt: Callable[[int, float, str], None] | None = None,
    interval: float = 0.5,
) -> object:
    """Call ``probe`` until it succeeds; stop early when the process exits.

    ``on_attempt(attempt, elapsed, last_error)`` is called after each failed attempt, for progress.
    """
    started = time.monotonic()
    attempt = 0
    last_error = "no answer yet"
    while True:
        attempt += 1
        try:
            return probe()
        except Exception as err:  # any failure means "not ready yet"
            last_error = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        elapsed = time.monotonic() - started
        if not still_running():
            raise ServiceNotReady(f"{name} exited during startup (last probe: {last_error})")
        if elapsed >= timeout:
            raise ServiceNotReady(f"{name} did not answer within {timeout:.0f}s (last probe: {last_error})")
        if on_attempt:
            on_attempt(attempt, elapsed, last_error)
        time.sleep(interval)
