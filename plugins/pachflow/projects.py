"""Pachyderm projects: make sure the one a task writes to exists.

A task's project comes from its own ``project`` argument, else the connection's ``project``
extra, else ``default`` (pachd's own default project, which always exists).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pachflow.exceptions import PachydermNotFound

if TYPE_CHECKING:
    from pachyderm_sdk import Client

log = logging.getLogger(__name__)


def ensure_project(client: Client, project: str, *, create: bool = True, setting: str = "create") -> bool:
    """Create ``project`` when it does not exist (logged); True when it was created.

    With ``create`` False a missing project is a :class:`PachydermNotFound` naming it and the
    ``setting`` that forbade creating it.
    """
    from pachyderm_sdk.api import pfs

    ref = pfs.Project(name=project)
    if client.pfs.project_exists(ref):
        return False
    if not create:
        raise PachydermNotFound(f"Pachyderm project {project!r} does not exist ({setting}=False)")
    try:
        client.pfs.create_project(project=ref, description="created by pachflow")
    except Exception:
        if client.pfs.project_exists(ref):  # created by a concurrent task in between: fine
            return False
        raise
    log.info("Created Pachyderm project %s", project)
    return True
