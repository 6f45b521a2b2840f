"""The unprivileged user user code runs as when pachd-lite runs as root
(``PACHD_LITE_USER_CODE_USER``), as a worker pod's container runs as its image's user."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

USER_ENV_VAR = "PACHD_LITE_USER_CODE_USER"


@dataclass(frozen=True)
class RunAs:
    """An unprivileged user that user code runs as (pachd-lite itself runs as root)."""

    name: str
    uid: int
    gid: int

    @classmethod
    def from_env(cls) -> RunAs | None:
        name = os.environ.get(USER_ENV_VAR, "").strip()
        if not name:
            return None
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ValueError(f"{USER_ENV_VAR}={name}: no such user on this machine") from None
        if entry.pw_uid == 0:
            raise ValueError(f"{USER_ENV_VAR}={name}: user code must run as an unprivileged user, not root")
        if os.geteuid() != 0:
            raise ValueError(
                f"{USER_ENV_VAR}={name}: pachd-lite must run as root to start user code as {name}"
            )
        return cls(name, entry.pw_uid, entry.pw_gid)

    def own(self, *paths: Path) -> None:
        """Give ``paths`` to this user (its sandbox folder and /pfs/out)."""
        for path in paths:
            os.chown(path, self.uid, self.gid)
