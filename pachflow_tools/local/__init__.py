"""`pachflow local`: pachd-lite and an MLflow tracking server on this machine, for Airflow to use."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of `pachflow local ...` (called by the `pachflow` dispatcher)."""
    from pachflow_tools.local.cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
