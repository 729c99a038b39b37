"""The `shardline` command: parse arguments, call the public API.

A mistake of the user's (bad flag value, unknown table, processor not importable,
unreachable endpoint, missing credentials) prints one line to stderr and exits 2.
Imports are lazy so `shardline --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shardline.aws.settings import AwsSettings

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    words = sys.argv[1:] if argv is None else list(argv)
    if "run" in words or "multilang" in words:
        from shardline import early_signals

        early_signals.install()  # before anything slow: SIGTERM now means a clean stop
    _remember_secrets(words, os.environ)
    args = _parser().parse_args(argv)
    args.words = words
    _setup_logging(args.log_level, getattr(args, "log_format", "text"))
    from shardline.errors import (
        AccessDeniedError,
        ConfigError,
        ConnectionFailedError,
        CredentialsError,
        LeaseTableError,
        ResourceNotFoundError,
        WorkerFailedError,
    )
    from shardline.sinks.base import SinkError

    user_errors = (
        SinkError,
        ConfigError,
        CredentialsError,
        ConnectionFailedError,
        LeaseTableError,
        AccessDeniedError,
        ResourceNotFoundError,
    )
    try:
        result: int = args.action(args)
        return result
    except user_errors as exc:
        print(f"shardline: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except WorkerFailedError as exc:  # logged with its traceback when it happened
        print(f"shardline: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: its traceback, secrets masked (Python would print them)
        import traceback

        from shardline.redact import SECRETS

        sys.stderr.write(SECRETS.redact(traceback.format_exc()))
        return 1


def _remember_secrets(words: Sequence[str], environ: Mapping[str, str]) -> None:
    """Add the secrets of the environment and of URLs on the command line to SECRETS."""
    from shardline.redact import SECRETS, secrets_in_environ, secrets_in_url

    in_words = [secret for word in words if "://" in word for secret in secrets_in_url(word)]
    SECRETS.add(*secrets_in_environ(environ), *in_words)


def _one_line(exc: BaseException) -> str:
    from shardline.errors import ConnectionFailedError
    from shardline.redact import SECRETS

    text = " ".join(SECRETS.redact(str(exc)).split())
    if isinstance(exc, ConnectionFailedError) and " the proxy " in text:
        return f"{text}; check HTTPS_PROXY / HTTP_PROXY / NO_PROXY (and lower case)"
    if isinstance(exc, ConnectionFailedError):
        return f"cannot reach the endpoint ({text}); check --endpoint-url / AWS_ENDPOINT_URL"
    return text


# --- argument parsing ----------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shardline",
        description="Consume DynamoDB Streams with KCL-grade leases and checkpoints.",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run(commands)
    _add_status(commands)
    _add_local(commands)
    _add_demo(commands)
    from shardline.multilang.cli import register as add_multilang

    add_multilang(commands)
    from shardline.iam import register as add_iam_policy

    add_iam_policy(commands)
    from shardline.sinks.query import register as add_query

    add_query(commands)
    return parser


def _add_stream_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    stream = parser.add_mutually_exclusive_group(required=required)
    stream.add_argument("--table", help="the DynamoDB table whose latest stream to read")
    stream.add_argument("--stream-arn", help="the DynamoDB stream ARN to read")
    parser.add_argument(
        "--application", required=required, help="application name; names the lease table"
    )
    parser.add_argument("--lease-table", help="lease table name (default: the application)")
    parser.add_argument("--endpoint-url", help="endpoint for DynamoDB and Streams (local stack)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION or the profile's)")
    parser.add_argument("--profile", help="AWS profile name")


#: The parsers of `run` and `check`, whose options the environment and --config may set.
_RUN_PARSERS: dict[str, argparse.ArgumentParser] = {}


def _add_run(commands: Any) -> None:
    run = commands.add_parser("run", help="consume the stream with a processor and/or sinks")
    _add_run_arguments(run)
    run.set_defaults(action=_run)
    check = commands.add_parser(
        "check", help="validate a pipeline and reach every target, without reading the stream"
    )
    _add_run_arguments(check)
    check.set_defaults(action=_check)
    _RUN_PARSERS.update(run=run, check=check)


def _add_run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "processor", nargs="?", help="module:function or module:ProcessorClass (or --lambda)"
    )
    run.add_argument("--config", help="pipeline file (TOML): source, delivery, sinks")
    run.add_argument(
        "--sink",
        action="append",
        help="write into a target named by URL, e.g. postgresql://user@host/db?table=t or "
        "dynamodb://Table (repeatable)",
    )
    run.add_argument(
        "--snapshot", action="store_true", help="copy the whole table into the sinks first"
    )
    run.add_argument(
        "--snapshot-segments", type=int, default=8, help="parallel Scan segments (default 8)"
    )
    _add_stream_args(run, required=False)
    run.add_argument(
        "--starting-position",
        default="TRIM_HORIZON",
        choices=["TRIM_HORIZON", "LATEST"],
        help="where shards without a lease start (default TRIM_HORIZON)",
    )
    run.add_argument("--worker-id", help="stable id; a restarted worker keeps its leases")
    run.add_argument("--failover-time", type=float, default=10.0, help="seconds (default 10)")
    run.add_argument("--idle-time", type=float, default=0.5, help="sleep after an empty page")
    run.add_argument("--max-records", type=int, default=1000, help="GetRecords limit, 1-1000")
    run.add_argument("--max-leases", type=int, help="most leases this worker holds")
    run.add_argument("--shard-sync-interval", type=float, default=60.0, help="seconds")
    run.add_argument("--shutdown-grace", type=float, default=5.0, help="seconds")
    run.add_argument(
        "--handoff-timeout",
        type=float,
        default=5.0,
        help="seconds a balance steal waits for a graceful handoff (default 5; 0: take at once)",
    )
    run.add_argument(
        "--lease-scan-interval",
        type=float,
        help="seconds between lease-table scans (default: failover/4, at most 1)",
    )
    _add_event_loop_arg(run)
    run.add_argument(
        "--no-gc-tuning",
        action="store_true",
        help="keep Python's default garbage-collector thresholds",
    )
    from shardline.delivery.settings import add_delivery_arguments

    add_delivery_arguments(run)


def _add_status(commands: Any) -> None:
    status = commands.add_parser("status", help="leases, owners, checkpoints and lag")
    _add_stream_args(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(action=_status)


def _add_local(commands: Any) -> None:
    local = commands.add_parser("local", help="run the embedded DynamoDB + Streams local stack")
    from shardline.local.args import register_local_arguments

    register_local_arguments(local)
    local.set_defaults(action=_local)


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser("demo", help="local stack, a writer, two workers, a live view")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--rollover-every", type=float, default=20.0, help="seconds (default 20)")
    demo.add_argument("--writes-per-second", type=float, default=20.0)
    demo.set_defaults(action=_demo)


def _setup_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr through a formatter that masks secrets (text or JSON lines).

    Text: only when nothing configured logging before (as ``logging.basicConfig``; an
    embedding program or a test harness keeps its handlers). Warnings become log lines, so
    that they are masked too.
    """
    from shardline.observability import TextFormatter, setup_logging

    logging.getLogger("botocore").setLevel(logging.WARNING)
    if log_format == "json":
        setup_logging(level, log_format)
    elif not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(TextFormatter())
        logging.basicConfig(level=level.upper(), handlers=[handler])
    else:
        return
    logging.captureWarnings(True)


# --- commands --------------------------------------------------------------------------


def _aws_settings(args: argparse.Namespace) -> AwsSettings:
    from shardline.aws.settings import AwsSettings

    return AwsSettings(region=args.region, profile=args.profile, endpoint_url=args.endpoint_url)


def _resolved(args: argparse.Namespace) -> Any:
    from shardline.delivery.settings import KEYS
    from shardline.run_options import resolve_run

    parser = _RUN_PARSERS[args.command]
    flag_format = args.log_format
    resolved = resolve_run(args, parser._actions, args.words, os.environ, KEYS)
    if args.log_format != flag_format:  # SHARDLINE_LOG_FORMAT or the pipeline file said so
        _setup_logging(args.log_level, args.log_format)
    return resolved


def _run(args: argparse.Namespace) -> int:
    from shardline.config import default_worker_id
    from shardline.delivery.config import DeliveryConfig
    from shardline.errors import ConfigError
    from shardline.runner import Consumer

    resolved = _resolved(args)
    sinks = resolved.sinks(os.environ)
    if args.processor and args.lambda_handler:
        raise ConfigError("give a processor (module:function) or --lambda, not both")
    if not (args.processor or args.lambda_handler or sinks):
        raise ConfigError("give a processor (module:function), --lambda, or a --sink")
    handler = args.processor or args.lambda_handler
    processor = load_processor(handler) if handler else None
    wants_delivery = resolved.delivery or args.lambda_handler or sinks
    consumer = Consumer(
        processor,
        sinks=sinks,
        snapshot_segments=args.snapshot_segments,
        delivery=DeliveryConfig(**resolved.delivery) if wants_delivery else None,
        lambda_mode=args.lambda_handler is not None,
        function_name=args.function_name,
        destination_endpoint_url=args.on_failure_endpoint_url,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        application=args.application,
        table=args.table,
        stream_arn=args.stream_arn,
        lease_table=args.lease_table,
        worker_id=args.worker_id or default_worker_id(),
        starting_position=args.starting_position,
        failover_time=args.failover_time,
        idle_time=args.idle_time,
        max_records=args.max_records,
        max_leases=args.max_leases,
        shard_sync_interval=args.shard_sync_interval,
        shutdown_grace=args.shutdown_grace,
        handoff_timeout=args.handoff_timeout,
        lease_scan_interval=args.lease_scan_interval,
        aws=_aws_settings(args),
    )
    if not args.no_gc_tuning:
        import gc

        # Busy consumers spend half their time in the cyclic collector traversing pages
        # in flight; fewer young-generation passes: 6,000 -> 9,650 records/s (bench/).
        gc.set_threshold(10_000, 100, 1000)
    consumer.run(event_loop=args.event_loop)
    return 0


#: shardline.event_loop.EVENT_LOOPS, spelled out so that --help does not import asyncio.
EVENT_LOOP_CHOICES = ("auto", "uvloop", "asyncio")


def _add_event_loop_arg(parser: Any) -> None:
    parser.add_argument(
        "--event-loop",
        choices=EVENT_LOOP_CHOICES,
        default="auto",
        help="auto (default): uvloop when installed, else asyncio's loop",
    )


def load_processor(spec: str) -> object:
    """Import ``module:attribute`` (the current directory is on the path)."""
    from shardline.imports import import_attribute

    return import_attribute(spec, "processor")


def _check(args: argparse.Namespace) -> int:
    import asyncio

    from shardline.delivery.config import DeliveryConfig
    from shardline.sinks.check import check_pipeline

    resolved = _resolved(args)
    sinks = resolved.sinks(os.environ)
    DeliveryConfig(**resolved.delivery)
    handler = args.processor or args.lambda_handler
    if handler:
        load_processor(handler)
    fine, problems = asyncio.run(
        check_pipeline(_aws_settings(args), args.table, args.stream_arn, args.application, sinks)
    )
    from shardline.redact import SECRETS

    for line in fine:
        print(f"ok: {SECRETS.redact(line)}")
    for line in problems:
        print(f"shardline: error: {SECRETS.redact(line)}", file=sys.stderr)
    return EXIT_USAGE if problems else 0


def _status(args: argparse.Namespace) -> int:
    import asyncio

    from shardline.status import gather_status

    stream_arn, rows = asyncio.run(
        gather_status(
            _aws_settings(args),
            args.lease_table or args.application,
            table=args.table,
            stream_arn=args.stream_arn,
        )
    )
    from shardline.sinks.runtime import snapshot_table_name
    from shardline.sinks.segments import snapshot_progress

    lease_table = args.lease_table or args.application
    snapshot = asyncio.run(snapshot_progress(_aws_settings(args), snapshot_table_name(lease_table)))
    if args.json:
        import orjson

        from shardline.redact import SECRETS

        payload: dict[str, Any] = {
            "stream_arn": stream_arn,
            "shards": [row.as_dict() for row in rows],
        }
        if snapshot is not None:
            payload["snapshot"] = snapshot
        text = orjson.dumps(SECRETS.redact_value(payload), option=orjson.OPT_INDENT_2).decode()
        sys.stdout.write(text + "\n")
        return 0
    from rich.console import Console

    from shardline.views import status_table

    Console().print(status_table(stream_arn, rows))
    if snapshot is not None:
        print(
            f"snapshot: {snapshot['segments_done']}/{snapshot['segments']} segments done, "
            f"{snapshot['items_copied']} items copied"
        )
    return 0


def _local(args: argparse.Namespace) -> int:
    from shardline.local.args import serve_from_args

    serve_from_args(args)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from shardline.demo import run_demo

    run_demo(
        duration=args.duration,
        rollover_every=args.rollover_every,
        writes_per_second=args.writes_per_second,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
