"""The Python shim for datum batching: pachyderm_sdk reads the datum's variables from the
hard-coded ``/pfs/.env``, which a host does not have; the shim points it at the sandbox's."""

from __future__ import annotations

import os
from pathlib import Path

from pachd_lite.pps.user_env import DOTENV_ENV_VAR

# A known difference from pachd, documented for users: pachyderm_sdk's datum batching loads the
# hard-coded /pfs/.env, which does not exist on a host. This sitecustomize (first on the user
# process's PYTHONPATH) repoints that module's DOTENV_PATH_WORKER to $PACHD_LITE_DOTENV when
# pachyderm_sdk.api.worker.extension is imported, then runs any other sitecustomize as usual.
_SITECUSTOMIZE = '''\
"""pachd-lite: point pachyderm_sdk's datum-batching .env at the sandbox (not /pfs/.env)."""
import importlib.abc, importlib.machinery, importlib.util, os, sys
from pathlib import Path

_TARGET = "pachyderm_sdk.api.worker.extension"
_HERE = os.path.dirname(os.path.abspath(__file__))


class _RepointDotenv(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET or not os.environ.get("PACHD_LITE_DOTENV"):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def patched(module):
            exec_module(module)
            module.DOTENV_PATH_WORKER = Path(os.environ["PACHD_LITE_DOTENV"])

        spec.loader.exec_module = patched
        return spec


sys.meta_path.insert(0, _RepointDotenv())

_other = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
)
if _other is not None and _other.loader is not None:
    _module = importlib.util.module_from_spec(_other)
    _other.loader.exec_module(_module)
'''


def install_python_shim(sandbox: Path, env: dict[str, str]) -> None:
    shim_dir = sandbox / ".pachd-lite-python"
    shim_dir.mkdir(parents=True, exist_ok=True)
    (shim_dir / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(shim_dir) + (os.pathsep + existing if existing else "")
    env[DOTENV_ENV_VAR] = str(sandbox / "pfs" / ".env")
