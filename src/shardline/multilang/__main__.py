"""``python -m shardline.multilang --properties app.properties``: the daemon alone."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from shardline.errors import ConfigError, ShardlineError
from shardline.multilang.cli import register


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments like ``shardline multilang``; one line and exit 2 on a mistake."""
    parser = argparse.ArgumentParser(prog="python -m shardline.multilang")
    parser.add_argument("--log-level", default="INFO")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["multilang", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        result: int = args.action(args)
    except (ConfigError, ShardlineError) as exc:
        print(f"shardline: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    raise SystemExit(main())
