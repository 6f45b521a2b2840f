"""pachd-lite's layering (pachd_lite/README.md, "Layout"), checked on the source with `ast`:

- the gRPC adapters in api/ hold no SQL and never touch the database: they call domain functions;
- no module imports a layer above its own (errors/calls/protojson/auth < storage < pfs < pps < api
  < server/cli), so no domain or storage module imports pachd_lite.api, not even lazily;
- no module registers into a module-level registry at import time (callbacks are passed in
  explicitly, like PfsContext.new_commit_hooks).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import pachd_lite

ROOT = Path(pachd_lite.__file__).resolve().parent

# rank of each top-level module or package of pachd_lite; a module may import only ranks <= its own
LAYERS = {
    "errors": 0,
    "calls": 0,
    "protojson": 0,
    "cronspec": 0,
    "auth": 0,
    "storage": 1,
    "pfs": 2,
    "pps": 3,
    "api": 4,
    "server": 5,
    "cli": 5,
}
SQL_RE = re.compile(
    r"\b(SELECT\b.*\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX)"
    r"|DROP\s+TABLE|PRAGMA)\b",
    re.DOTALL,
)
DB_CALLS = {"execute", "executemany", "executescript", "cursor", "commit", "rollback"}
MUTATORS = {"append", "extend", "insert", "add", "update", "setdefault", "register"}


def _sources(under: Path = ROOT) -> dict[str, ast.Module]:
    return {
        path.relative_to(ROOT).as_posix(): ast.parse(path.read_text(), str(path))
        for path in sorted(under.rglob("*.py"))
    }


def _layer(module: str) -> str:
    """The LAYERS key of a source path ("pfs/files.py") or dotted module ("pachd_lite.pfs.files")."""
    parts = module.removesuffix(".py").replace("/", ".").removeprefix("pachd_lite.").split(".")
    return parts[0]


def sql_in_adapters(sources: dict[str, ast.Module]) -> list[str]:
    """Where a module of api/ holds SQL text, calls the database, or touches ``ctx.db``/sqlite3."""
    found = []
    for name, tree in sources.items():
        if _layer(name) != "api":
            continue
        for node in ast.walk(tree):
            where = f"{name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_RE.search(node.value):
                found.append(f"{where}: SQL text {node.value[:60]!r}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in DB_CALLS:
                    found.append(f"{where}: database call .{node.func.attr}()")
            elif isinstance(node, ast.Attribute) and node.attr == "db":
                found.append(f"{where}: uses the database (.db)")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if "sqlite3" in names:
                    found.append(f"{where}: imports sqlite3")
    return found


def imports_up(sources: dict[str, ast.Module]) -> list[str]:
    """Imports of a pachd_lite module from a layer above the importing module's."""
    found = []
    for name, tree in sources.items():
        own = _layer(name)
        if name == "__init__.py":
            continue
        assert own in LAYERS, f"pachd_lite/{name}: add its layer to LAYERS in this test"
        for node in ast.walk(tree):  # lazy imports inside functions count too
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                assert node.level == 0, f"pachd_lite/{name}:{node.lineno}: use absolute imports"
                base = node.module
                targets = [f"{base}.{a.name}" if base == "pachd_lite" else base for a in node.names]
            for target in targets:
                if target.split(".")[0] != "pachd_lite" or target == "pachd_lite":
                    continue
                layer = _layer(target)
                if LAYERS.get(layer, 99) > LAYERS[own]:
                    found.append(f"{name}:{node.lineno}: {own} imports {target} ({layer} is above it)")
    return found


def module_level_registrations(sources: dict[str, ast.Module]) -> list[str]:
    """Module-level statements that put something into a container or object held elsewhere:
    ``REGISTRY["x"] = f``, ``other.attr = v``, ``HOOKS.append(f)``."""
    found = []
    for name, tree in sources.items():
        for stmt in tree.body:
            targets: list[ast.expr] = []
            if isinstance(stmt, ast.Assign):
                targets = stmt.targets
            elif isinstance(stmt, ast.AugAssign | ast.AnnAssign):
                targets = [stmt.target]
            for t in targets:
                if isinstance(t, ast.Subscript | ast.Attribute):
                    found.append(f"{name}:{stmt.lineno}: module-level assignment into {ast.unparse(t)}")
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                func = stmt.value.func
                if isinstance(func, ast.Attribute) and func.attr in MUTATORS:
                    found.append(f"{name}:{stmt.lineno}: module-level {ast.unparse(func)}(...)")
    return found


def test_api_adapters_hold_no_sql_and_never_touch_the_database():
    assert sql_in_adapters(_sources()) == []


def test_no_module_imports_a_layer_above_its_own():
    assert imports_up(_sources()) == []


def test_no_module_level_registries_are_filled_at_import():
    assert module_level_registrations(_sources()) == []


# --- the checks can fail --------------------------------------------------------------------------


def _parsed(name: str, text: str) -> dict[str, ast.Module]:
    return {name: ast.parse(text)}


@pytest.mark.parametrize(
    "code",
    [
        'def f(conn):\n    return conn.execute("SELECT state FROM jobs WHERE id = ?", (1,))\n',
        "def f(ctx):\n    with ctx.db.read() as c:\n        return c\n",
        'Q = """INSERT OR REPLACE INTO cluster(key, value)\n VALUES (?, ?)"""\n',
        "import sqlite3\n",
    ],
)
def test_sql_in_an_adapter_is_found(code):
    assert sql_in_adapters(_parsed("api/x_api.py", code))
    assert not sql_in_adapters(_parsed("pps/x.py", code))  # the domain is where SQL belongs


def test_an_adapter_calling_domain_functions_passes():
    code = "from pachd_lite.pps import jobs\n\ndef f(self):\n    return jobs.last_job_state(self.ctx, 'p', 'n')\n"
    assert sql_in_adapters(_parsed("api/x_api.py", code)) == []


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("pps/service.py", "def f():\n    from pachd_lite.api.pps_api import PpsApi\n    return PpsApi\n"),
        ("pfs/x.py", "from pachd_lite.pps import jobs\n"),
        ("storage/db.py", "from pachd_lite import pfs\n"),
        ("protojson.py", "from pachd_lite.pfs.model import PfsContext\n"),
    ],
)
def test_an_import_from_above_is_found(name, code):
    assert imports_up(_parsed(name, code))


def test_imports_down_or_within_a_layer_pass():
    code = "from pachd_lite import calls, protojson\nfrom pachd_lite.pfs import files\nfrom pachd_lite.pps import jobs\n"
    assert imports_up(_parsed("pps/x.py", code)) == []


@pytest.mark.parametrize(
    "code",
    [
        'from pachd_lite.pfs.metadata import pipeline_metadata\n\npipeline_metadata["get"] = len\n',
        "HOOKS = []\nHOOKS.append(len)\n",
        "from pachd_lite.pfs import model\nmodel.default_hook = len\n",
    ],
)
def test_a_module_level_registration_is_found(code):
    assert module_level_registrations(_parsed("pps/x.py", code))


def test_module_level_constants_pass():
    code = 'LIMITS = {"a": 1}\n__all__ = ["f"]\n\ndef f(registry):\n    registry["x"] = 1\n'
    assert module_level_registrations(_parsed("pps/x.py", code)) == []
