"""Builds and runs the pachd-lite gRPC server."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import signal
import sqlite3
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from pachd_lite import auth
from pachd_lite.api.admin_api import AdminApi, MetadataApi, VersionApi
from pachd_lite.api.limits import THREADS, CallSlots
from pachd_lite.api.pfs_api import DESERIALIZERS, PfsApi
from pachd_lite.api.pps_api import PpsApi
from pachd_lite.api.registry import PachydermHandler, RpcMethod, unserved_methods
from pachd_lite.api.transaction_api import TransactionApi
from pachd_lite.pfs import garbage, projects, recovery, triggers
from pachd_lite.pfs.model import PfsContext
from pachd_lite.pps import secrets as pipeline_secrets
from pachd_lite.pps.service import PpsService
from pachd_lite.storage.blobs import BlobStore
from pachd_lite.storage.db import Database

log = logging.getLogger("pachd_lite")

MAX_MESSAGE = 20 * 1024 * 1024
M_MMAP_THRESHOLD = -3


@dataclass
class ServerConfig:
    root: Path
    host: str = "127.0.0.1"
    port: int = 30650
    max_parallelism: int = 0  # 0: the machine's core count
    auth_token: str = field(default="", repr=False)  # "": no auth (loopback only)
    file_url_roots: tuple[Path, ...] = ()  # host folders add_file may read file:// URLs from
    extra: dict = field(default_factory=dict)


def limit_heap_growth() -> None:
    """Serve large allocations (19 MiB messages) from mmap so freeing returns them to the OS.

    glibc raises its mmap threshold after the first large free, after which big buffers come
    from the heap and RSS ratchets up with every upload; a fixed threshold keeps RSS bounded.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def open_context(
    root: Path, redact: auth.Redactor | None = None, file_url_roots: tuple[Path, ...] = ()
) -> PfsContext:
    root.mkdir(parents=True, exist_ok=True)
    try:
        db = Database(root / "pachd.sqlite")
    except sqlite3.Error as exc:  # unreadable, not a database, or on a full disk
        raise OSError(f"cannot open the metadata database {root / 'pachd.sqlite'}: {exc}") from exc
    ctx = PfsContext(
        db=db,
        blobs=BlobStore(root),
        root=root,
        redact=redact or auth.Redactor(),
        file_url_roots=tuple(p.resolve() for p in file_url_roots),
    )
    ctx.finished_commit_hooks.append(functools.partial(triggers.fire_on_finish, ctx))
    projects.ensure_default(ctx)
    recovery.drop_interrupted_one_off_writes(ctx)
    pipeline_secrets.init(ctx)  # their values are masked from the first log line on
    garbage.collect(ctx, idle=True)
    return ctx


class PachdLite:
    """The running server: storage, the gRPC services and the PPS scheduler."""

    def __init__(self, config: ServerConfig) -> None:
        auth.check_bind(config.host, config.port, config.auth_token)
        limit_heap_growth()
        self.config = config
        self.redact = auth.Redactor([config.auth_token])
        self._undo_log_redaction = auth.install_log_redaction(self.redact)
        self.ctx = open_context(config.root, self.redact, config.file_url_roots)
        self.collector = garbage.Collector(self.ctx)
        self.cron_triggers = triggers.CronTriggers(self.ctx)
        self.health = health.HealthServicer()
        pfs_api = PfsApi(self.ctx)
        adapters: dict[str, object] = {
            "pfs_v2.API": pfs_api,
            "admin_v2.API": AdminApi(self.ctx),
            "versionpb_v2.API": VersionApi(),
            "metadata.API": MetadataApi(self.ctx),
        }
        self.pps = PpsService(self.ctx, config)
        pps_api = PpsApi(self.ctx, self.pps.logs, self.pps.scheduler.running)
        adapters["pps_v2.API"] = pps_api
        transactions = TransactionApi(self.ctx, pfs_api, pps_api)
        adapters["transaction_v2.API"] = transactions
        if {service: type(a) for service, a in adapters.items()} != ADAPTER_CLASSES:
            raise RuntimeError("pachd_lite.server.ADAPTER_CLASSES must list the adapters PachdLite builds")
        self.adapters = adapters  # service name -> adapter; every other RPC answers UNIMPLEMENTED
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="rpc"),
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.so_reuseport", 0),
            ],
            # every admitted call has a thread: over capacity is RESOURCE_EXHAUSTED, never a silent queue
            maximum_concurrent_rpcs=THREADS,
            interceptors=[auth.TokenAuthInterceptor(config.auth_token)] if config.auth_token else [],
        )
        self.server.add_generic_rpc_handlers(
            (PachydermHandler(adapters, DESERIALIZERS, transactions.intercept, self.redact, CallSlots()),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        bound = self.server.add_insecure_port(f"{config.host}:{config.port}")
        if not bound:
            raise OSError(f"cannot listen on {config.host}:{config.port}")
        self.port = bound
        self.pps.set_port(bound)

    def start(self) -> None:
        self.server.start()
        self.pps.start()
        self.collector.start()
        self.cron_triggers.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "pachd-lite serving on %s:%d (root %s, auth %s)",
            self.config.host,
            self.port,
            self.config.root,
            "required" if self.config.auth_token else "off",
        )

    def stop(self, grace: float = 2.0) -> None:
        self.health.enter_graceful_shutdown()
        self.cron_triggers.stop()
        self.pps.stop()
        self.server.stop(grace).wait()
        self.collector.stop()
        self.ctx.db.close()
        self.ctx.blobs.close()
        log.info("pachd-lite stopped")
        self._undo_log_redaction()


# The adapter class of each service the server serves (its __init__ builds one of each): every
# other RPC answers UNIMPLEMENTED. test_unserved_list checks this against a running server.
ADAPTER_CLASSES: dict[str, type] = {
    "pfs_v2.API": PfsApi,
    "admin_v2.API": AdminApi,
    "versionpb_v2.API": VersionApi,
    "metadata.API": MetadataApi,
    "pps_v2.API": PpsApi,
    "transaction_v2.API": TransactionApi,
}


def unserved_rpcs() -> list[RpcMethod]:
    """The SDK RPCs pachd-lite answers UNIMPLEMENTED (no server is started to find them)."""
    return unserved_methods(ADAPTER_CLASSES)


def serve(config: ServerConfig) -> None:
    """Run until SIGTERM/SIGINT."""
    app = PachdLite(config)
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    app.start()
    done.wait()
    app.stop()
