"""``shardline local`` flags: :func:`register_local_arguments` and :func:`serve_from_args`.

The CLI calls both, so the flags, their help and their mapping to
:func:`~shardline.local.server.serve` live next to the local stack;
``python -m shardline.local`` uses them too. The defaults of ``--host``, ``--port`` and
``--region`` are :data:`~shardline.local.settings.LOCAL`'s.
"""

from __future__ import annotations

import argparse

from shardline.local.faults import FaultRule
from shardline.local.settings import LOCAL


def _fault(spec: str) -> FaultRule:
    try:
        return FaultRule.parse(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register_local_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every ``shardline local`` flag to ``parser``."""
    parser.add_argument("--host", default=LOCAL.host)
    parser.add_argument("--port", type=int, default=LOCAL.port, help="0: a free port")
    parser.add_argument("--region", default=LOCAL.region)
    shards = parser.add_argument_group("shard changes")
    shards.add_argument("--rollover-every", type=float, help="seconds between shard rollovers")
    shards.add_argument("--split-every", type=float, help="seconds between shard splits")
    shards.add_argument(
        "--reshard-every",
        type=float,
        help="roll over or split one random open shard at random moments, on average "
        "every this many seconds",
    )
    shards.add_argument(
        "--max-open-shards", type=int, default=8, help="--reshard-every splits only below this"
    )
    shards.add_argument(
        "--parent-open-for",
        type=float,
        help="seconds a parent stays open (taking writes) after its children appear",
    )
    reads = parser.add_argument_group("reads")
    reads.add_argument("--iterator-ttl", type=float, help="seconds before iterators expire")
    reads.add_argument(
        "--retention", type=float, help="seconds before records are trimmed (AWS: 86400)"
    )
    reads.add_argument("--max-page-bytes", type=int, default=1_048_576)
    reads.add_argument("--describe-page-size", type=int, default=100, help="shards per page")
    reads.add_argument(
        "--children-first", action="store_true", help="list child shards before parents"
    )
    reads.add_argument(
        "--lazy-shard-end",
        action="store_true",
        help="end a closed shard with an extra empty page, not on the page of its last records",
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--fault",
        dest="faults",
        action="append",
        type=_fault,
        default=[],
        metavar="KIND[:key=value...]",
        help="inject a fault; KIND is throttle, error, drop, race or empty; keys: "
        "ops=Op1,Op2 (or streams / writes), rate=0..1, count=N, table=NAME, applied=1. "
        "Repeat for more rules; change them at run time with POST /_shardline/faults",
    )
    faults.add_argument("--seed", type=int, help="seed for fault draws and random shard changes")


def serve_from_args(args: argparse.Namespace) -> None:
    """Run :func:`~shardline.local.server.serve` with the flags
    :func:`register_local_arguments` added."""
    from shardline.local.server import serve  # the server pulls in moto: only when serving

    serve(
        args.host,
        args.port,
        rollover_every=args.rollover_every,
        split_every=args.split_every,
        region=args.region,
        reshard_every=args.reshard_every,
        max_open_shards=args.max_open_shards,
        parent_open_for=args.parent_open_for,
        iterator_ttl=args.iterator_ttl,
        retention=args.retention,
        max_page_bytes=args.max_page_bytes,
        describe_page_size=args.describe_page_size,
        children_first=args.children_first,
        eager_shard_end=not args.lazy_shard_end,
        faults=args.faults,
        seed=args.seed,
    )
