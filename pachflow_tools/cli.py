"""The ``pachflow`` command line: a thin dispatcher to one module per subcommand.

Each subcommand module owns its own argument parser and exposes ``main(argv) -> int``.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "lineage": ("pachflow_tools.lineage_cli", "follow MLflow run <-> Pachyderm commit lineage, both ways"),
    "rollback": (
        "pachflow_tools.rollback_cli",
        "move a model's alias (and optionally the source data) back to a run, all or nothing",
    ),
    "rejects": (
        "pachflow_tools.rejects_cli",
        "show the rows a pipeline rejected in a commit (count, first reasons)",
    ),
    "rm": (
        "pachflow_tools.rm_cli",
        "remove files from a branch in a new commit (e.g. a bad file pushed by mistake)",
    ),
    "generate": ("spark_jobs.generate", "generate PaySim-shaped transaction CSVs"),
    "local": ("pachflow_tools.local", "start, stop and inspect pachd-lite + MLflow on this machine"),
}


def usage() -> str:
    lines = ["usage: pachflow <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    lines += ["", "Run `pachflow <command> --help` for the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"pachflow: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name = SUBCOMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        print(f"pachflow {name}: not available in this build ({module_name} is missing)", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
