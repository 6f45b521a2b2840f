"""The ``pachd-lite`` command line."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pachd-lite", description="A local server for Pachyderm's gRPC API."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Pachyderm API")
    serve.add_argument("--root", default=".local/pachd", help="storage folder (default .local/pachd)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=30650, help="port (default 30650)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"pachd-lite {args.command} is not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
