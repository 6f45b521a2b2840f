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
    # no abbreviations: `--auth-token SECRET` must not pass as `--auth-token-file SECRET`
    serve = sub.add_parser("serve", help="serve the Pachyderm API", allow_abbrev=False)
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
        "--auth-token-file",
        metavar="PATH",
        help="file holding the auth token clients must send (default: $PACHD_LITE_AUTH_TOKEN); "
        "required to bind a non-loopback address. There is no flag for the token itself: "
        "command lines are visible to every user in `ps`.",
    )
    serve.add_argument(
        "--allow-file-urls",
        metavar="DIR",
        action="append",
        default=[],
        help="let add_file read file:// URLs under DIR (repeatable); without it file:// URLs are "
        "refused, so clients cannot read the server's files",
    )
    serve.add_argument(
        "--log-level", default=os.environ.get("PACHD_LITE_LOG_LEVEL", "INFO"), help="e.g. DEBUG"
    )
    sub.add_parser(
        "rpcs",
        help="list, per service, the SDK's RPCs pachd-lite serves and those it answers UNIMPLEMENTED",
    )
    return parser


def print_rpcs() -> None:
    """One line per service: how many RPCs are served, and the names of those that are not."""
    from pachd_lite.api.registry import load_methods
    from pachd_lite.server import unserved_rpcs

    unserved = {m.path for m in unserved_rpcs()}
    by_service: dict[str, tuple[list[str], list[str]]] = {}
    for path, method in sorted(load_methods().items()):
        served, not_served = by_service.setdefault(method.service, ([], []))
        (not_served if path in unserved else served).append(method.name)
    for service, (served, not_served) in by_service.items():
        print(f"{service}: {len(served)} served, {len(not_served)} unserved: {' '.join(not_served) or '-'}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "rpcs":
        print_rpcs()
        return 0
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from pachd_lite.auth import ConfigError, read_token
    from pachd_lite.server import ServerConfig, serve

    try:
        config = ServerConfig(
            root=Path(args.root).resolve(),
            host=args.host,
            port=args.port,
            max_parallelism=args.max_parallelism,
            auth_token=read_token(args.auth_token_file),
            file_url_roots=tuple(_existing_dir(d) for d in args.allow_file_urls),
        )
        serve(config)
    except ConfigError as exc:
        print(f"pachd-lite: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"pachd-lite: {exc}", file=sys.stderr)
        return 1
    return 0


def _existing_dir(text: str) -> Path:
    from pachd_lite.auth import ConfigError

    path = Path(text).resolve()
    if not path.is_dir():
        raise ConfigError(f"--allow-file-urls {text}: not a directory")
    return path


if __name__ == "__main__":
    sys.exit(main())
