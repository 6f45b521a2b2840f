"""Access control: the bind rule, the shared auth token, and keeping the token out of every output.

pachd-lite has one credential, a shared token (pachd's ``authn-token`` header, which the SDK
sends for ``Client(auth_token=...)`` and ``PACH_PYTHON_AUTH_TOKEN``). Without a token the server
only listens on loopback; with one, every RPC except the gRPC health service must carry it.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

TOKEN_ENV = "PACHD_LITE_AUTH_TOKEN"
TOKEN_HEADER = "authn-token"
OPEN_SERVICES = ("/grpc.health.v1.Health/",)
MASK = "[redacted]"

log = logging.getLogger("pachd_lite.auth")


class ConfigError(ValueError):
    """A server configuration pachd-lite refuses to run with."""


def is_loopback(host: str) -> bool:
    """True if every address ``host`` stands for is a loopback address."""
    if not host:
        return False  # "" binds every interface
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def check_bind(host: str, port: int, token: str) -> None:
    """Refuse to listen beyond this machine without a token."""
    if token or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to listen on {host or '*'}:{port} without an auth token: anyone who can reach that "
        f"address could read, change and delete every repo. Set {TOKEN_ENV} or pass --auth-token-file "
        "PATH (clients then send it as their auth token), or bind a loopback address such as 127.0.0.1."
    )


def read_token(token_file: str | None, environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The configured token: from ``token_file`` (first line) if given, else the environment; "" if none."""
    if token_file:
        path = Path(token_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read the auth token file {path}: {exc.strerror or exc}") from exc
        token = text.strip()
        if not token:
            raise ConfigError(f"the auth token file {path} is empty")
        if "\n" in token:
            raise ConfigError(f"the auth token file {path} must hold one line (the token)")
        mode = path.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("the auth token file %s is readable by other users: chmod 600 it", path)
        return token
    token = environ.get(TOKEN_ENV, "").strip()
    if environ.get(TOKEN_ENV) is not None and not token:
        raise ConfigError(f"{TOKEN_ENV} is set but empty")
    return token


MIN_MASKED_LENGTH = 4  # shorter values would mask common words ("a", "db") all over the logs


class Redactor:
    """Replaces the secrets it knows with a mask; the identity when it knows none.

    ``add`` registers more values at run time (pipeline secrets); each line of a multi-line
    value is masked too, since logs arrive line by line. Longer values are masked first."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self.secrets: list[str] = [s for s in (secrets or []) if s]
        self._lock = threading.Lock()

    def add(self, values: list[str]) -> None:
        """Mask these values from now on (values and lines shorter than 4 characters are not)."""
        new: set[str] = set()
        for value in values:
            lines = [line.strip() for line in value.splitlines()] if "\n" in value else []
            new.update(p for p in (value, *lines) if len(p) >= MIN_MASKED_LENGTH)
        with self._lock:
            merged = set(self.secrets) | new
            # a new list, swapped in whole: readers iterate a consistent one
            self.secrets = sorted(merged, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class RedactingFilter(logging.Filter):
    """A handler filter that masks secrets in every formatted log record."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redact.secrets:
            return True
        message = record.getMessage()
        cleaned = self.redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # tracebacks are formatted later from exc_info: format now, then mask
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(redact: Redactor) -> Callable[[], None]:
    """Mask secrets in everything the root logger's handlers write; returns an undo function.

    Installed even when ``redact`` knows no secret yet: pipeline secrets are added later."""
    flt = RedactingFilter(redact)
    handlers = list(logging.getLogger().handlers)
    for h in handlers:
        h.addFilter(flt)

    def undo() -> None:
        for h in handlers:
            h.removeFilter(flt)

    return undo


def _denied(kind_request_streaming: bool, kind_response_streaming: bool, path: str) -> grpc.RpcMethodHandler:
    message = f"{path}: no valid auth token in the '{TOKEN_HEADER}' header (this pachd-lite requires one)"

    def deny(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    def deny_stream(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield from ()

    if kind_request_streaming and kind_response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny_stream)
    if kind_request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if kind_response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny_stream)
    return grpc.unary_unary_rpc_method_handler(deny)


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Lets through calls whose ``authn-token`` equals the token (constant-time compare) and the
    health service; everything else ends UNAUTHENTICATED before its handler runs."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("TokenAuthInterceptor needs a token")
        self._token = token.encode()

    def _authorised(self, metadata: Any) -> bool:
        supplied = b""
        for key, value in metadata or ():
            if key == TOKEN_HEADER:
                supplied = value.encode() if isinstance(value, str) else bytes(value)
                break
        return hmac.compare_digest(supplied, self._token)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        path = details.method
        if path.startswith(OPEN_SERVICES) or self._authorised(details.invocation_metadata):
            return continuation(details)
        handler = continuation(details)
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED
        return _denied(handler.request_streaming, handler.response_streaming, path)
