"""Snapshot copy rate against a bare parallel boto3 Scan of the same local stack.

The local stack runs in its own process (pinned to one core, the consumer side to the
other). A table of ``--items`` items (~``--item-bytes`` each) is read:

* baseline: ``--segments`` threads, each a boto3 client scanning its segment (Limit 1000,
  consistent reads), items discarded;
* shardline: :class:`shardline.sinks.snapshot.SnapshotRun` with the same segments, every
  segment leased in its segment table, the position written after every page, the rows
  handed to a sink that discards them (``--sink null``) or to PostgreSQL (``--sink
  postgres``: a private server started here, state mode).

Target: the copy runs at >= 80% of the bare Scan's rate (the stack is the limit there).
Prints one table and writes ``bench/results/snapshot-<UTC>.json``.

    .venv/bin/python bench/snapshot.py [--items 20000] [--segments 4] [--sink null|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import procs

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.sinks.base import ShardSink, Sink, SinkContext, SnapshotRow
from shardline.sinks.runtime import describe_source
from shardline.sinks.snapshot import SnapshotRun


class NullSink(Sink):
    """Counts snapshot rows and discards them."""

    name = "null://"
    snapshot = True

    def __init__(self) -> None:
        self.rows = 0

    async def start(self, context: SinkContext) -> None:
        return None

    def open_shard(self, shard_id: str) -> ShardSink:
        raise NotImplementedError

    async def write_snapshot(self, rows: Sequence[SnapshotRow]) -> None:
        self.rows += len(rows)


def fill(endpoint: str, table: str, items: int, item_bytes: int) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    filler = "x" * max(1, item_bytes - 60)
    for start in range(0, items, 25):
        batch = [
            {"PutRequest": {"Item": {"pk": {"S": f"key-{i:08d}"}, "n": {"N": str(i)},
                                     "pad": {"S": filler}}}}
            for i in range(start, min(items, start + 25))
        ]  # fmt: skip
        ddb.batch_write_item(RequestItems={table: batch})


def bare_scan(endpoint: str, table: str, segments: int) -> tuple[int, float]:
    counts = [0] * segments

    def scan(segment: int) -> None:
        ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        kwargs: dict[str, Any] = {"TableName": table, "Segment": segment,
                                  "TotalSegments": segments, "Limit": 1000,
                                  "ConsistentRead": True}  # fmt: skip
        while True:
            page = ddb.scan(**kwargs)
            counts[segment] += len(page["Items"])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    threads = [threading.Thread(target=scan, args=(s,)) for s in range(segments)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - started


async def shardline_copy(endpoint: str, table: str, segments: int, sink: Sink) -> float:
    aws = AwsSettings(endpoint_url=endpoint, region="us-east-1")
    dynamodb = AwsJsonClient.create("dynamodb", aws)
    try:
        context = await describe_source(dynamodb, table, "", "bench", aws)
        await sink.start(context)
        run = SnapshotRun(
            dynamodb, context, [sink], worker_id="bench", segment_table=f"snap-{uuid.uuid4().hex}",
            segments=segments, parallel=segments, failover_time=10.0,
        )  # fmt: skip
        started = time.perf_counter()
        await run.run(asyncio.Event())
        return time.perf_counter() - started
    finally:
        await sink.close()
        await dynamodb.close()


def make_sink(kind: str) -> tuple[Sink, Any]:
    if kind == "null":
        return NullSink(), None
    from tests.postgres.server import PostgresServer

    from shardline.sinks.postgres import PostgresSink

    server = PostgresServer()
    server.start()
    return PostgresSink(server.create_database("bench"), table="copy", snapshot=True), server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--item-bytes", type=int, default=500)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--sink", choices=["null", "postgres"], default="null")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_REGION", "us-east-1")):  # fmt: skip
        os.environ.setdefault(name, value)
    consumer_cpu, server_cpu = procs.cpus()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {consumer_cpu})
    stack = procs.start_stack(server_cpu)
    endpoint = f"http://127.0.0.1:{stack.port}"
    sink, server = make_sink(args.sink)
    try:
        table = "snapshot-bench"
        fill(endpoint, table, args.items, args.item_bytes)
        rows = []
        for _ in range(args.rounds):
            count, bare = bare_scan(endpoint, table, args.segments)
            ours = asyncio.run(shardline_copy(endpoint, table, args.segments, sink))
            rows.append({"bare_items_per_s": count / bare, "copy_items_per_s": args.items / ours})
    finally:
        stack.stop()
        if server is not None:
            server.stop()
    report = summarize(args, rows)
    print_table(report)
    write(report)
    return 0


def summarize(args: argparse.Namespace, rows: list[dict[str, float]]) -> dict[str, Any]:
    bare = sorted(r["bare_items_per_s"] for r in rows)[len(rows) // 2]
    copy = sorted(r["copy_items_per_s"] for r in rows)[len(rows) // 2]
    return {
        "name": "snapshot", "items": args.items, "item_bytes": args.item_bytes,
        "segments": args.segments, "sink": args.sink, "rounds": rows,
        "bare_items_per_s_median": bare, "copy_items_per_s_median": copy,
        "ratio": copy / bare, "target_ratio": 0.8, "load_average": procs.load_average(),
    }  # fmt: skip


def print_table(report: dict[str, Any]) -> None:
    print(f"snapshot of {report['items']} items (~{report['item_bytes']} B), "
          f"{report['segments']} segments, sink {report['sink']}")  # fmt: skip
    print(f"{'round':>5} {'bare boto3 Scan items/s':>24} {'shardline copy items/s':>23}")
    for i, row in enumerate(report["rounds"], 1):
        print(f"{i:>5} {row['bare_items_per_s']:>24,.0f} {row['copy_items_per_s']:>23,.0f}")
    print(f"median ratio copy/bare: {report['ratio']:.2f} (target >= 0.80)")


def write(report: dict[str, Any]) -> None:
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = results / f"snapshot-{stamp}.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"JSON: {path}")


if __name__ == "__main__":
    raise SystemExit(main())
