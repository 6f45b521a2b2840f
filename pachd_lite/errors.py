"""Domain errors; the gRPC adapters map each class to a status code."""

from __future__ import annotations


class PachdError(Exception):
    """Base class of every error the domain reports to clients."""


class NotFound(PachdError):
    pass


class AlreadyExists(PachdError):
    pass


class InvalidArgument(PachdError):
    pass


class FailedPrecondition(PachdError):
    pass


class PermissionDenied(PachdError):
    pass


class Unimplemented(PachdError):
    pass


class Unknown(PachdError):
    """What pachd answers with a plain (non-status) error: gRPC UNKNOWN with the message."""


class DeadlineExceeded(PachdError):
    """The call's deadline passed (or its client left) before the work was done."""


class ResourceExhausted(PachdError):
    """A limit on concurrent calls of one kind was reached; retry later."""
