"""The environment pachd gives user code, on a host: job-level worker variables, the user
process's full environment, the datum batching ``.env`` file, and ``/pfs`` paths mapped into
the datum's sandbox.

The user process inherits pachd-lite's own environment (like a worker container inherits its
image's), then ``env`` on top; PATH starts with the directory of ``sys.executable``, so
``python3 -m spark_jobs.etl`` finds the packages installed next to pachd-lite. PYTHONUNBUFFERED=1
is set unless given, so Python user code's prints reach the logs while it runs.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

# "/pfs" as a path prefix: not preceded by a path character, followed by "/" or a non-name char.
_PFS_PREFIX = re.compile(r"(?<![\w./~-])/pfs(?=/|$|[^\w.-])")
DOTENV_ENV_VAR = "PACHD_LITE_DOTENV"
TOKEN_ENV_VARS = ("PACH_PYTHON_AUTH_TOKEN", "PACH_TOKEN")  # where user code gets the auth token


def map_pfs_paths(text: str, sandbox: Path | str) -> str:
    """Replace every `/pfs` path prefix in `text` with `<sandbox>/pfs`."""
    target = str(Path(sandbox) / "pfs")
    return _PFS_PREFIX.sub(lambda _m: target, text)


def job_env(
    *,
    pipeline_name: str,
    project_name: str,
    job_id: str,
    output_commit_id: str,
    spec_commit_id: str,
    transform_env: Mapping[str, str] | None = None,
    worker_port: int | None = None,
    pachd_address: tuple[str, int] | None = None,
    auth_token: str = "",
) -> dict[str, str]:
    """Job-level worker variables; the spec's `transform.env` cannot override pachd's own.

    With ``auth_token``, user code gets it as ``PACH_PYTHON_AUTH_TOKEN`` (what pachyderm_sdk's
    ``Client()``/``Client.new_in_cluster()`` read) and ``PACH_TOKEN`` (what pachd gives workers)."""
    env = dict(transform_env or {})
    env.update(
        {
            "PPS_PIPELINE_NAME": pipeline_name,
            "PPS_PROJECT_NAME": project_name,
            "PPS_SPEC_COMMIT": spec_commit_id,
            "PPS_POD_NAME": f"pachd-lite-{project_name}-{pipeline_name}".lower(),
            "PPS_WORKER_IP": "127.0.0.1",
            "PACH_JOB_ID": job_id,
            "PACH_OUTPUT_COMMIT_ID": output_commit_id,
        }
    )
    if worker_port is not None:
        env["PPS_WORKER_GRPC_PORT"] = str(worker_port)
    if pachd_address is not None:
        # What Client.new_in_cluster() reads inside a worker.
        env["PACHD_PEER_SERVICE_HOST"], env["PACHD_PEER_SERVICE_PORT"] = (
            pachd_address[0],
            str(pachd_address[1]),
        )
    if auth_token:
        for key in TOKEN_ENV_VARS:
            env[key] = auth_token
    return env


def user_process_env(env: Mapping[str, str], sandbox: Path | str) -> dict[str, str]:
    """The full environment of a user process: inherited, then `env` (/pfs-mapped), PATH first
    entry = this interpreter's bin directory."""
    full = dict(os.environ)
    full.update({k: map_pfs_paths(v, sandbox) for k, v in env.items()})
    bin_dir = os.path.dirname(sys.executable)
    path = full.get("PATH", os.defpath)
    full["PATH"] = bin_dir + os.pathsep + path if path else bin_dir
    full.setdefault("PYTHONUNBUFFERED", "1")
    return full


def write_dotenv(sandbox: Path | str, env: Mapping[str, str]) -> Path:
    """Write `<sandbox>/pfs/.env` (python-dotenv syntax, double-quoted values, /pfs-mapped)."""
    path = Path(sandbox) / "pfs" / ".env"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for key, value in env.items():
        v = map_pfs_paths(value, sandbox)
        v = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'{key}="{v}"\n')
    tmp = path.with_name(".env.tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)
    return path
