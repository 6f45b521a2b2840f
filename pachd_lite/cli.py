"""The ``pachd-lite`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pachd-lite", description="A local server for Pachyderm's gRPC API."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Pachyderm API")
    serve.add_argument("--root", default=".local/pachd", help="storage folder (default .local/pachd)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=30650, help="port (default 30650)")
    serve.add_argument(
        "--max-parallelism",
        type=int,
        default=0,
        help="cap on concurrent pipeline workers (default: the number of CPU cores)",
    )
    serve.add_argument(
        "--log-level", default=os.environ.get("PACHD_LITE_LOG_LEVEL", "INFO"), help="e.g. DEBUG"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from pachd_lite.server import ServerConfig, serve

    try:
        serve(
            ServerConfig(
                root=Path(args.root).resolve(),
                host=args.host,
                port=args.port,
                max_parallelism=args.max_parallelism,
            )
        )
    except OSError as exc:
        print(f"pachd-lite: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
