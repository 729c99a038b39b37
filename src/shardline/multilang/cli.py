"""The ``shardline multilang`` subcommand (wired into ``shardline.cli``).

``shardline multilang --properties app.properties`` or ``shardline multilang
app.properties``, as the MultiLangDaemon accepts them.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from shardline.errors import ConfigError

__all__ = ["register", "run"]

log = logging.getLogger("shardline.multilang")


def register(subparsers: Any) -> None:
    """Add the ``multilang`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "multilang",
        help="run KCL MultiLang record processors (amazon-kclpy, aws-kcl) on DynamoDB Streams",
        description="Run an amazon-kclpy or aws-kcl record processor, one child process per "
        "shard lease, configured by a MultiLangDaemon properties file.",
    )
    parser.add_argument("properties_file", nargs="?", help="the MultiLangDaemon properties file")
    parser.add_argument(
        "-p", "--properties", "--properties-file", dest="properties", help="the properties file"
    )
    parser.add_argument(
        "-l",
        "--log-configuration",
        help="accepted for compatibility and ignored (use --log-level)",
    )
    parser.set_defaults(action=run)


def run(args: argparse.Namespace) -> int:
    """Run the daemon named by the parsed arguments."""
    from shardline.multilang.daemon import run_daemon

    return run_daemon(properties_path(args))


def properties_path(args: argparse.Namespace) -> str:
    """The properties file from ``--properties`` or the positional argument."""
    positional, option = args.properties_file, args.properties
    if positional and option and positional != option:
        raise ConfigError("give the properties file once: --properties FILE or FILE")
    path = option or positional
    if not path:
        raise ConfigError("name the properties file: shardline multilang --properties FILE")
    if getattr(args, "log_configuration", None):
        log.info("--log-configuration is ignored; use --log-level")
    return str(path)
