"""``python -m shardline.local``: the local stack with every ``shardline local`` flag."""

from __future__ import annotations

import argparse
import logging
import sys

from shardline.local.args import register_local_arguments, serve_from_args


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m shardline.local", description="the embedded DynamoDB + Streams stack"
    )
    register_local_arguments(parser)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    serve_from_args(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
