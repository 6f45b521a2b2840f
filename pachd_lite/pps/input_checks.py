"""pachd's refusals of an input spec before it lists datums for it (apiServer.listDatumInput).

Public API:
    refuse_cron_input(inp: pps.Input) -> None
        Raises pachd's plain error (UNKNOWN) if `inp` or any input under it is a cron input: a
        cron input's datums are its tick files, which exist only once its pipeline made them.
"""

from __future__ import annotations

from pachyderm_sdk.api import pps

from pachd_lite.errors import Unknown
from pachd_lite.pps.spec import cron_inputs

__all__ = ["refuse_cron_input"]

CRON_LIST_ERROR = "can't list datums with a cron input, there will be no datums until the pipeline is created"


def refuse_cron_input(inp: pps.Input) -> None:
    if cron_inputs(inp):
        raise Unknown(CRON_LIST_ERROR)
