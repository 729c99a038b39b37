"""``python -m shardline.multilang --properties app.properties``: the daemon alone."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from shardline.cli import _one_line, _remember_secrets, _setup_logging
from shardline.errors import ConfigError, ShardlineError
from shardline.multilang.cli import register


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments like ``shardline multilang``; one line and exit 2 on a mistake."""
    parser = argparse.ArgumentParser(prog="python -m shardline.multilang")
    parser.add_argument("--log-level", default="INFO")
    register(parser.add_subparsers(dest="command"))
    words = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(["multilang", *words])
    # the same output as `shardline multilang`: secrets masked in log lines and errors
    _remember_secrets(words, os.environ)
    _setup_logging(args.log_level)
    try:
        result: int = args.action(args)
    except (ConfigError, ShardlineError) as exc:
        print(f"shardline: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    raise SystemExit(main())
