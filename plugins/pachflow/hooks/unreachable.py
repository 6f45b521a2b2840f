"""A task whose pachd or MLflow stayed unreachable through the hook's own retries fails for good.

The hooks already retry while a service is unreachable (:data:`TASK_RETRY_SECONDS` for pachd,
MLflow's HTTP retries for MLflow), long enough to ride out a restart. An Airflow retry after that
only repeats the wait a retry delay later, so :func:`no_retry_when_unreachable` turns those errors
into ``AirflowFailException`` with the same message (which names the address).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowFailException

from pachflow.exceptions import PachydermConnectionError, one_line

TASK_RETRY_SECONDS = 30.0  # how long a task's pachd calls retry while pachd is unreachable
F = TypeVar("F", bound=Callable[..., Any])


def unreachable_reason(err: BaseException, conn_id: str | None = None) -> str | None:
    """The failure message when ``err`` means pachd or MLflow could not be reached, else None."""
    from pachflow.hooks.pachyderm import is_transient

    if isinstance(err, PachydermConnectionError):
        return str(err)
    if is_transient(err):  # a pachd call whose retries ran out
        where = f" at {_address(conn_id)} (connection {conn_id!r})" if conn_id else ""
        return f"pachd{where} stayed unavailable through {TASK_RETRY_SECONDS:g} s of retries: {one_line(err)}"
    if _is_mlflow_connection_error(err):
        return str(err).strip().splitlines()[0]  # "API request to <url> failed with exception ..."
    return None


def _address(conn_id: str) -> str:
    """The pachd address of ``conn_id`` (the SDK's errors do not always name it)."""
    from pachflow.hooks.pachyderm import PachydermHook

    try:
        return PachydermHook(conn_id).address
    except Exception:  # the failure message must not fail: the connection id alone then
        return "an address not resolved"


def _is_mlflow_connection_error(err: BaseException) -> bool:
    # An MlflowException exists only once mlflow is imported: never import it (seconds) to find
    # out, e.g. for every skipped task.
    exceptions = sys.modules.get("mlflow.exceptions")
    if exceptions is None or not isinstance(err, exceptions.MlflowException):
        return False
    import requests

    # MLflow re-raises the requests error inside its except block: it is the implicit context.
    cause = err.__cause__ or err.__context__
    return isinstance(cause, requests.exceptions.ConnectionError)


def no_retry_when_unreachable(execute: F) -> F:
    """Decorate an operator's ``execute``: an unreachable pachd/MLflow fails the task without retries."""

    @functools.wraps(execute)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return execute(*args, **kwargs)
        except AirflowFailException:
            raise
        except Exception as err:
            reason = unreachable_reason(err, getattr(args[0] if args else None, "pachyderm_conn_id", None))
            if reason is None:
                raise
            raise AirflowFailException(
                f"{reason} (not retrying the task: the hook's retries are spent)"
            ) from err

    return wrapper  # type: ignore[return-value]
