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

from pachd_lite import calls, errors
from pachd_lite.api.limits import CallSlots
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
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
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


class UndecodableRequest:
    """Stands for a request message that could not be parsed; the handler answers INVALID_ARGUMENT."""

    def __init__(self, message: str) -> None:
        self.message = message


def _tolerant(parse: Callable[[bytes], Any], method: RpcMethod) -> Callable[[bytes], Any]:
    """A deserializer that hands bad input to the handler (gRPC would answer a bare INTERNAL)."""

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except UnicodeDecodeError as exc:
            text = bytes(exc.object[:200]) if isinstance(exc.object, bytes | bytearray) else b""
            return UndecodableRequest(
                f"{method.path}: a text field (e.g. a path) is not valid UTF-8: {text!r}"
            )
        except Exception as exc:  # malformed protobuf
            return UndecodableRequest(
                f"{method.path}: the request is not a valid {method.request.__name__} message ({exc})"
            )

    return deserialize


def _checked(request: Any) -> Any:
    if isinstance(request, UndecodableRequest):
        raise errors.InvalidArgument(request.message)
    return request


def _checked_stream(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        checked = _checked(request)
        del request  # hold no upload chunk while grpc receives the next one
        yield checked
        del checked


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
    slots: CallSlots | None = None,
) -> Callable:
    streaming_out = method.kind.endswith("_stream")
    streaming_in = method.kind.startswith("stream_")
    slots = slots or CallSlots()

    def check(request: Any) -> Any:
        return _checked_stream(request) if streaming_in else _checked(request)

    if streaming_out:

        def stream_handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.monotonic()
            count = 0
            try:
                with (
                    slots.take(method.path, request),
                    calls.bound(method.path, context.time_remaining(), context.is_active),
                ):
                    for item in fn(check(request), context):
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
            with (
                slots.take(method.path, request),
                calls.bound(method.path, context.time_remaining(), context.is_active),
            ):
                request = check(request)
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


# pachd without auth answers these with auth.ErrNotActivated (UNIMPLEMENTED, this exact message, which
# the SDK turns into AuthServiceNotActivated): directly, or via its auth interceptor's WhoAmI/Authorize.
AUTH_NOT_ACTIVATED = "the auth service is not activated"
_AUTH_ANSWERED_OTHERWISE = {"Activate", "GetOIDCLogin"}  # pachd answers these differently; not served


def unserved_message(method: RpcMethod) -> str:
    """What an RPC pachd-lite does not implement answers (always with UNIMPLEMENTED)."""
    if method.service == "auth_v2.API" and method.name not in _AUTH_ANSWERED_OTHERWISE:
        return AUTH_NOT_ACTIVATED
    return f"pachd-lite does not support {method.path}"


def _unimplemented(method: RpcMethod) -> Callable:
    message = unserved_message(method)

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        log.debug("%s -> UNIMPLEMENTED", method.path)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

    if method.kind.endswith("_stream"):

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            handler(request, context)
            yield from ()

        return stream
    return handler


def implementation(adapters: dict[str, object], method: RpcMethod) -> Callable | None:
    """The adapter method serving ``method``, or None when it answers UNIMPLEMENTED."""
    adapter = adapters.get(method.service)
    return getattr(adapter, method.name, None) if adapter is not None else None


def unserved_methods(adapters: dict[str, object]) -> list[RpcMethod]:
    """Every SDK RPC that ``adapters`` (service name -> adapter) leave UNIMPLEMENTED, by path."""
    return [m for _, m in sorted(load_methods().items()) if implementation(adapters, m) is None]


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
        slots: CallSlots | None = None,
    ) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        slots = slots or CallSlots()
        deserializers = deserializers or {}
        for path, method in load_methods().items():
            fn = implementation(adapters, method)
            behaviour = (
                _wrap(method, fn, interceptor, redact, slots) if fn is not None else _unimplemented(method)
            )
            self._handlers[path] = _FACTORIES[method.kind](
                behaviour,
                request_deserializer=_tolerant(deserializers.get(path, method.request.FromString), method),
                response_serializer=_serialize,
            )

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(handler_call_details.method)
