"""Wires PPS into the server: the job hook on new commits, the log store, the scheduler (the
server builds the gRPC adapter, ``api.pps_api.PpsApi``, on the log store)."""

from __future__ import annotations

from typing import Any

from pachd_lite.pfs.model import PfsContext, PipelineMetadataStore
from pachd_lite.pps import jobs, pipelines
from pachd_lite.pps.logs import LogStore
from pachd_lite.pps.run_as import RunAs
from pachd_lite.pps.scheduler import Scheduler


class PpsService:
    def __init__(self, ctx: PfsContext, config: Any) -> None:
        self.ctx = ctx
        ctx.new_commit_hooks.append(jobs.new_commit_hook(ctx))
        ctx.pipeline_metadata = PipelineMetadataStore(get=pipelines.get_metadata, set=pipelines.set_metadata)
        self.logs = LogStore(ctx)
        host = config.host if config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        try:
            run_as = RunAs.from_env()
        except ValueError as e:
            raise SystemExit(f"pachd-lite: {e}") from None
        self.scheduler = Scheduler(
            ctx, self.logs, (host, config.port), config.max_parallelism, auth_token=config.auth_token,
            run_as=run_as,
        )  # fmt: skip

    def set_port(self, port: int) -> None:
        """The port the server really listens on (workers' Client.new_in_cluster() dials it)."""
        self.scheduler.pachd_address = (self.scheduler.pachd_address[0], port)

    def start(self) -> None:
        self.logs.start()
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.logs.stop()
