"""Build pachd and MLflow clients for the ``pachflow`` subcommands from flags, connections or env."""

from __future__ import annotations

import argparse
from typing import Any


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
    """(MlflowClient, tracking URI)."""
    from mlflow import MlflowClient

    if args.tracking_uri:
        uri = args.tracking_uri.rstrip("/")
        return MlflowClient(tracking_uri=uri, registry_uri=uri), uri
    from pachflow.hooks.mlflow import MLflowHook

    hook = MLflowHook(args.mlflow_conn_id)
    return hook.get_conn(), hook.tracking_uri


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
