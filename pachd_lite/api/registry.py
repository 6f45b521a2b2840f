"""The method table of every Pachyderm service, read from pachyderm_sdk's generated stubs.

The SDK's ``ApiStub`` classes name each RPC path, its kind and its betterproto request and
response classes; reading them keeps pachd-lite's wire contract identical to the client's.
A service adapter implements a method by defining an attribute with the RPC's name;
everything else answers UNIMPLEMENTED.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from pachd_lite import errors
from pachd_lite.pfs.model import no_redaction

log = logging.getLogger("pachd_lite.rpc")

STUB_MODULES = [
    "pachyderm_sdk.api.pfs",
    "pachyderm_sdk.api.pps",
    "pachyderm_sdk.api.admin",
    "pachyderm_sdk.api.version",
    "pachyderm_sdk.api.metadata",
    "pachyderm_sdk.api.auth",
    "pachyderm_sdk.api.transaction",
    "pachyderm_sdk.api.enterprise",
    "pachyderm_sdk.api.license",
    "pachyderm_sdk.api.identity",
    "pachyderm_sdk.api.debug",
    "pachyderm_sdk.api.logs",
    "pachyderm_sdk.api.pjs",
    "pachyderm_sdk.api.snapshot",
    "pachyderm_sdk.api.storage",
    "pachyderm_sdk.api.worker",
]

_RPC_RE = re.compile(
    r"channel\.(unary_unary|unary_stream|stream_unary|stream_stream)\(\s*\"(/[^\"]+)\",\s*"
    r"request_serializer=([\w.]+)\.SerializeToString,\s*response_deserializer=([\w.]+)\.FromString"
)

CODES = {
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
}


@dataclass(frozen=True)
class RpcMethod:
    path: str  # "/pfs_v2.API/CreateRepo"
    kind: str  # unary_unary | unary_stream | stream_unary | stream_stream
    request: type
    response: type

    @property
    def service(self) -> str:
        return self.path.split("/")[1]

    @property
    def name(self) -> str:
        return self.path.split("/")[2]


def _resolve(module: Any, dotted: str) -> type:
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def load_methods() -> dict[str, RpcMethod]:
    """Every RPC the SDK's stubs know, keyed by path."""
    methods: dict[str, RpcMethod] = {}
    for mod_name in STUB_MODULES:
        try:
            module = importlib.import_module(mod_name)
        except ImportError:  # pragma: no cover - all ship with the pinned SDK
            continue
        source = inspect.getsource(module)
        for kind, path, req, resp in _RPC_RE.findall(source):
            methods[path] = RpcMethod(path, kind, _resolve(module, req), _resolve(module, resp))
    return methods


def _serialize(msg: Any) -> bytes:
    return msg if isinstance(msg, bytes | bytearray | memoryview) else bytes(msg)


def abort_for(
    exc: BaseException,
    context: grpc.ServicerContext,
    method: str,
    redact: Callable[[str], str] = no_redaction,
) -> None:
    if isinstance(exc, errors.PachdError):
        code = CODES.get(type(exc), grpc.StatusCode.UNKNOWN)
        for cls, c in CODES.items():
            if isinstance(exc, cls):
                code = c
        context.abort(code, redact(str(exc)))
    log.exception("internal error in %s", method)
    context.abort(grpc.StatusCode.INTERNAL, redact(f"pachd-lite internal error in {method}: {exc}"))


Interceptor = Callable[[str, Any, grpc.ServicerContext], Any]


def _wrap(
    method: RpcMethod,
    fn: Callable,
    interceptor: Interceptor | None = None,
    redact: Callable[[str], str] = no_redaction,
) -> Callable:
    streaming_out = method.kind.endswith("_stream")

    if streaming_out:

        def stream_handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.monotonic()
            count = 0
            try:
                for item in fn(request, context):
                    count += 1
                    yield item
            except grpc.RpcError:
                raise
            except Exception as exc:  # mapped to a status code
                abort_for(exc, context, method.path, redact)
            finally:
                log.debug("%s -> %d message(s) in %.3fs", method.path, count, time.monotonic() - start)

        return stream_handler

    def unary_handler(request: Any, context: grpc.ServicerContext) -> Any:
        start = time.monotonic()
        try:
            if interceptor is not None:
                recorded = interceptor(method.path, request, context)
                if recorded is not None:
                    return recorded
            return fn(request, context)
        except grpc.RpcError:
            raise
        except Exception as exc:  # mapped to a status code
            abort_for(exc, context, method.path, redact)
        finally:
            log.debug("%s in %.3fs", method.path, time.monotonic() - start)

    return unary_handler


def _unimplemented(method: RpcMethod) -> Callable:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        log.debug("%s -> UNIMPLEMENTED", method.path)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"pachd-lite does not support {method.path}")

    if method.kind.endswith("_stream"):

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            handler(request, context)
            yield from ()

        return stream
    return handler


_FACTORIES = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


class PachydermHandler(grpc.GenericRpcHandler):
    """Routes every known Pachyderm RPC to the adapter implementing it, or to UNIMPLEMENTED."""

    def __init__(
        self,
        adapters: dict[str, object],
        deserializers: dict[str, Callable] | None = None,
        interceptor: Interceptor | None = None,
        redact: Callable[[str], str] = no_redaction,
    ) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        deserializers = deserializers or {}
        for path, method in load_methods().items():
            adapter = adapters.get(method.service)
            fn = getattr(adapter, method.name, None) if adapter is not None else None
            behaviour = _wrap(method, fn, interceptor, redact) if fn is not None else _unimplemented(method)
            self._handlers[path] = _FACTORIES[method.kind](
                behaviour,
                request_deserializer=deserializers.get(path, method.request.FromString),
                response_serializer=_serialize,
            )

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(handler_call_details.method)
