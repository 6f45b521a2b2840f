"""Build pachd and MLflow clients for the ``pachflow`` subcommands from flags, connections or env.

MLflow's client retries a failed request 7 times with exponential backoff (about 4 minutes) and
waits up to 120 s for an answer. A command line should give up sooner: :func:`mlflow` checks that
the server answers within ``--timeout`` seconds, then bounds each request by that timeout, without
retries, for the rest of the command (MLflow reads these settings from the environment per request).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from typing import Any

DEFAULT_TIMEOUT = 15.0


class ServiceUnreachable(ConnectionError):
    """MLflow (or pachd) did not answer within the command's timeout."""


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where pachd and MLflow are (default: the Airflow connections)")
    group.add_argument(
        "--pachd-address",
        help="pachd address [grpc|grpcs://]host:port (default: connection, then PACHD_ADDRESS)",
    )
    group.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: connection, then MLFLOW_TRACKING_URI)"
    )
    group.add_argument("--pachyderm-conn-id", default="pachyderm_default", help="Airflow connection of pachd")
    group.add_argument("--mlflow-conn-id", default="mlflow_default", help="Airflow connection of MLflow")
    group.add_argument(
        "--project", default=None, help="Pachyderm project (default: the connection's, or 'default')"
    )
    group.add_argument(
        "--no-pachyderm", action="store_true", help="answer from MLflow alone (no pachd needed)"
    )
    group.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"give up on an MLflow server that does not answer within this many seconds "
        f"(default {DEFAULT_TIMEOUT:g}; no retries)",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--timeout {text!r}: expected a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--timeout {text!r}: must be more than 0 seconds")
    return value


def pachyderm(args: argparse.Namespace) -> tuple[Any, str, str] | tuple[None, str, str]:
    """(client, project, address); client is None with ``--no-pachyderm``."""
    if args.no_pachyderm:
        return None, args.project or "default", ""
    from pachflow.hooks.pachyderm import PachydermHook, parse_pachd_address

    if args.pachd_address:
        from pachyderm_sdk import Client

        host, port, tls = parse_pachd_address(args.pachd_address)
        client = Client(host=host, port=port, tls=tls)
        scheme = "grpcs" if tls else "grpc"
        return client, args.project or "default", f"{scheme}://{host}:{port}"
    hook = PachydermHook(args.pachyderm_conn_id, project=args.project)
    return hook.get_conn(), hook.project, hook.address


def mlflow(args: argparse.Namespace) -> tuple[Any, str]:
    """(MlflowClient, tracking URI), once the server has answered within ``args.timeout`` seconds."""
    from mlflow import MlflowClient

    timeout = getattr(args, "timeout", DEFAULT_TIMEOUT)
    bound_mlflow_requests(timeout)
    if args.tracking_uri:
        uri = args.tracking_uri.rstrip("/")
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    else:
        from pachflow.hooks.mlflow import MLflowHook

        hook = MLflowHook(args.mlflow_conn_id)
        client, uri = hook.get_conn(), hook.tracking_uri
    check_mlflow_reachable(uri, timeout)
    return client, uri


def bound_mlflow_requests(timeout: float) -> None:
    """Bound every MLflow request of this process by ``timeout`` seconds, without retries."""
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, math.ceil(timeout)))
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    # urllib3 logs each retry and dropped connection; the command reports the failure in one line
    logging.getLogger("urllib3").setLevel(logging.ERROR)


def check_mlflow_reachable(uri: str, timeout: float) -> None:
    """Raise :class:`ServiceUnreachable` unless an HTTP(S) tracking server answers within ``timeout``.

    Any HTTP answer counts (a proxy's 404 or an auth server's 401 still means it is up); other
    URI schemes (``file:``, ``sqlite:``, ``databricks``) are not network servers to check here.
    """
    import requests

    if not uri.startswith(("http://", "https://")):
        return
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=(timeout, timeout), allow_redirects=False)
    except requests.exceptions.Timeout:
        raise ServiceUnreachable(f"MLflow at {uri} did not answer within {timeout:g} s (--timeout)") from None
    except requests.exceptions.RequestException as err:
        reason = type(err).__name__
        if isinstance(err, requests.exceptions.ConnectionError):
            reason = "connection refused or host unreachable"
        raise ServiceUnreachable(f"MLflow at {uri} is not reachable ({reason})") from None


def describe_error(err: BaseException, args: argparse.Namespace) -> str:
    """One line naming the service that failed (MLflow or pachd) and its answer."""
    import grpc
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException):
        where = args.tracking_uri or f"connection {args.mlflow_conn_id!r}"
        message = str(err.message if hasattr(err, "message") else err).splitlines()[0]
        return f"MLflow ({where}): {message}"
    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        where = args.pachd_address or f"connection {args.pachyderm_conn_id!r}"
        return f"pachd ({where}): {err.code().name}: {err.details()}"
    raise err
