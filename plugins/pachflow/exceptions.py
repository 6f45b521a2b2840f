"""Every error the pachflow provider raises on purpose, under one base class.

Catch :class:`PachflowError` to handle any of them; each also derives from the built-in error
it stands for (``ValueError`` for bad settings, ``LookupError`` for missing records, ...), so
callers written against those keep working. Messages name the setting, file, repo or commit.
No Airflow import here: the worker side (``pachflow.worker``) raises these too.
"""

from __future__ import annotations


def one_line(err: BaseException) -> str:
    """An error as one line: ``CODE: details`` for a gRPC error, else the first line of its message."""
    import grpc

    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        return f"{err.code().name}: {err.details()}"
    message = str(getattr(err, "message", None) or err).strip()
    return message.splitlines()[0] if message else type(err).__name__


class PachflowError(Exception):
    """Base of every pachflow error."""


class ConfigurationError(PachflowError, ValueError):
    """A required setting is missing or contradicts another; the message names it."""


class PachydermConnectionError(PachflowError, ConnectionError):
    """pachd could not be reached at the configured address."""


class PipelineSpecError(PachflowError, ValueError):
    """A pipeline spec file is missing, not JSON, or lacks a required field."""


class CommitNotFound(PachflowError, LookupError):
    """The repo has no commit in the requested commit set (or the branch does not exist)."""


class LineageError(PachflowError, LookupError):
    """Lineage could not be recorded or found; the message says which record is missing."""


class PachydermNotFound(PachflowError, LookupError):
    """A project, repo or branch the task names does not exist; the message names it."""


class RollbackError(PachflowError, RuntimeError):
    """A rollback failed; the message says what was changed (and undone) and what was not."""


class InvalidInputFile(PachflowError, ValueError):
    """A file to push fails its check (e.g. a CSV header without the expected columns); nothing
    was committed. The message names the file and the reason."""


class NoBranchForCommit(PachflowError, LookupError):
    """No single branch holds a commit (its own branch was deleted); the message names the commit
    and the branches that were candidates."""
