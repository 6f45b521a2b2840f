"""Build pachd and MLflow clients for the ``pachflow`` subcommands from flags, connections or env.

Where pachd and MLflow are: the flags, else the Airflow connections, else ``PACHD_ADDRESS`` /
``MLFLOW_TRACKING_URI``, else the local stack `pachflow local up` (or `make demo`) started, when it
is running. An error naming what is missing also names the command that fixes it.

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
START_LOCAL = "start the local stack with `make demo` (or `.venv/bin/pachflow local up`)"
LOCAL_HINT = (
    "the local stack answers no more: see `.venv/bin/pachflow local status`, restart it with `make demo`"
)


class ServiceUnreachable(ConnectionError):
    """MLflow (or pachd) did not answer within the command's timeout."""


def add_pachyderm_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    group = parser.add_argument_group(
        "where pachd is (default: the Airflow connection, PACHD_ADDRESS, then the running local stack)"
    )
    group.add_argument(
        "--pachd-address",
        help="pachd address [grpc|grpcs://]host:port (default: connection, PACHD_ADDRESS, local stack)",
    )
    group.add_argument("--pachyderm-conn-id", default="pachyderm_default", help="Airflow connection of pachd")
    group.add_argument(
        "--project", default=None, help="Pachyderm project (default: the connection's, or 'default')"
    )
    return group


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    group = add_pachyderm_args(parser)
    group.title = "where pachd and MLflow are (default: the Airflow connections, env, then the local stack)"
    group.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: connection, MLFLOW_TRACKING_URI, then the local stack)",
    )
    group.add_argument("--mlflow-conn-id", default="mlflow_default", help="Airflow connection of MLflow")
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


def local_stack() -> Any | None:
    """Settings of the local stack recorded in ``PACHFLOW_LOCAL_DIR`` (default ``.local/``) when one of
    its services is running, else None."""
    from pachflow_tools.local.processes import is_alive
    from pachflow_tools.local.settings import LocalSettings
    from pachflow_tools.local.stack import StackError, StackRecord

    try:
        record = StackRecord.load(LocalSettings.resolve())
    except (StackError, ValueError, OSError):
        return None
    if record is None or not any(is_alive(s) for s in record.services.values()):
        return None
    return record.settings


def pachyderm(args: argparse.Namespace) -> tuple[Any, str, str] | tuple[None, str, str]:
    """(client, project, address); client is None with ``--no-pachyderm``."""
    if getattr(args, "no_pachyderm", False):
        return None, args.project or "default", ""
    from pachflow.exceptions import PachydermConnectionError
    from pachflow.hooks.pachyderm import PachydermHook, parse_pachd_address

    address = args.pachd_address
    hook = PachydermHook(args.pachyderm_conn_id, project=args.project)
    if not address:
        try:
            return hook.get_conn(), hook.project, hook.address
        except PachydermConnectionError as err:
            if "No Airflow connection" not in str(err):
                raise
            stack = local_stack()
            if stack is None:
                raise PachydermConnectionError(
                    f"no Airflow connection {args.pachyderm_conn_id!r}, no PACHD_ADDRESS and no running local "
                    f"stack: {START_LOCAL}, or pass --pachd-address HOST:PORT"
                ) from None
            address = args.pachd_address = stack.pachd_address
            args.local_stack = True
    from pachyderm_sdk import Client

    host, port, tls = parse_pachd_address(address)
    client = Client(host=host, port=port, tls=tls)
    scheme = "grpcs" if tls else "grpc"
    return client, args.project or "default", f"{scheme}://{host}:{port}"


def mlflow(args: argparse.Namespace) -> tuple[Any, str]:
    """(MlflowClient, tracking URI), once the server has answered within ``args.timeout`` seconds."""
    from mlflow import MlflowClient

    timeout = getattr(args, "timeout", DEFAULT_TIMEOUT)
    bound_mlflow_requests(timeout)
    uri = args.tracking_uri
    if not uri:
        from pachflow.hooks.mlflow import MLflowHook

        hook = MLflowHook(args.mlflow_conn_id)
        try:
            hook.tracking_uri  # noqa: B018  (resolves the connection or MLFLOW_TRACKING_URI)
        except ValueError:
            stack = local_stack()
            if stack is None:
                raise ServiceUnreachable(
                    f"no Airflow connection {args.mlflow_conn_id!r}, no MLFLOW_TRACKING_URI and no running "
                    f"local stack: {START_LOCAL}, or pass --tracking-uri URL"
                ) from None
            uri = args.tracking_uri = stack.mlflow_tracking_uri
            args.local_stack = True
        else:
            client, uri = hook.get_conn(), hook.tracking_uri
            check_mlflow_reachable(uri, timeout)
            return client, uri
    uri = uri.rstrip("/")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        check_mlflow_reachable(uri, timeout)
    except ServiceUnreachable as err:
        if getattr(args, "local_stack", False):
            raise ServiceUnreachable(f"{err}; {LOCAL_HINT}") from None
        raise
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


def failure_line(command: str, err: BaseException, args: argparse.Namespace) -> str:
    """What ``pachflow <command>`` prints for ``err`` instead of a traceback: our own errors and
    bad values as they are, a service's answer naming the service (MLflow or pachd) and where it
    was reached; anything else is re-raised."""
    from pachflow.exceptions import PachflowError

    if isinstance(err, PachflowError | ValueError | ConnectionError):
        return f"pachflow {command}: {err}"
    import grpc  # only now: importing MLflow costs seconds
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException):
        where = args.tracking_uri or f"connection {args.mlflow_conn_id!r}"
        message = str(err.message if hasattr(err, "message") else err).splitlines()[0]
        return f"pachflow {command}: MLflow ({where}): {message}"
    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        where = args.pachd_address or f"connection {args.pachyderm_conn_id!r}"
        hint = f"; {LOCAL_HINT}" if getattr(args, "local_stack", False) else ""
        return f"pachflow {command}: pachd ({where}): {err.code().name}: {err.details()}{hint}"
    raise err


def resolve_commit(client: Any, project: str, repo: str, ref: str, args: argparse.Namespace) -> str:
    """The commit id ``ref`` names in ``project/repo`` (a branch gives its head); a missing project,
    repo, branch or commit is a PachydermNotFound saying which one."""
    from pachyderm_sdk.api import pfs

    from pachflow.exceptions import PachydermNotFound
    from pachflow.waiting import require_repo

    require_repo(client, project, repo)
    r = pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))
    if client.pfs.branch_exists(pfs.Branch(repo=r, name=ref)):
        return client.pfs.inspect_branch(branch=pfs.Branch(repo=r, name=ref)).head.id
    if _commit_exists(client, pfs.Commit(repo=r, id=ref)):
        return ref
    raise PachydermNotFound(f"{project}/{repo} has no commit or branch {ref!r}")


def _commit_exists(client: Any, commit: Any) -> bool:
    import grpc

    try:
        return bool(client.pfs.commit_exists(commit))
    except grpc.RpcError as err:
        if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            return False
        raise
