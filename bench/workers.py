"""Consumer processes of the benchmarks; each prints one JSON status line per interval.

    python bench/workers.py shardline --streams URL --ddb URL --stream-arn ARN --application A \
        --handler none|new_image|sleep|stamp
    python bench/workers.py boto3 --streams URL

Status line: ``t`` (wall clock), ``records`` (delivered so far), ``cpu`` (process CPU
seconds, all threads), and for shardline the worker's own metrics: leases held, leases
lost, renewal failures, GetRecords calls; ``lat`` holds the end-to-end latencies (seconds)
of stamped records seen since the last line (handler ``stamp``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import threading
import time
from typing import Any

import orjson


class Tally:
    """What the handler saw, shared between processor threads and the reporter."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records = 0
        self.latencies: list[Any] = []

    def add(self, count: int, latencies: list[Any] | None = None) -> None:
        with self.lock:
            self.records += count
            if latencies:
                self.latencies.extend(latencies)

    def take_latencies(self) -> list[Any]:
        with self.lock:
            taken, self.latencies = self.latencies, []
        return taken


def emit(status: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(status).decode() + "\n")
    sys.stdout.flush()


def make_handler(kind: str, tally: Tally, sleep: float) -> Any:
    def none(records: list[Any]) -> None:
        tally.add(len(records))

    def new_image(records: list[Any]) -> None:
        for record in records:
            record.new_image  # noqa: B018 - decoding is the work
        tally.add(len(records))

    def sleeper(records: list[Any]) -> None:
        time.sleep(sleep)
        tally.add(len(records))

    def stamp(records: list[Any]) -> None:
        now = time.time()
        seen: list[Any] = []
        for record in records:
            image = record.new_image or {}
            if "ts" in image:
                seen.append([now - float(image["ts"]), bool(image.get("busy"))])
        tally.add(len(records), seen)

    return {"none": none, "new_image": new_image, "sleep": sleeper, "stamp": stamp}[kind]


def undo_optimisations(names: list[str]) -> None:
    """Experiment (--undo): put back what an optimisation replaced, to measure its gain.

    ``gc-pause``: parse large JSON answers with the collector on (since GetRecords is
    parsed by msgspec, this only touches other answers, such as lease-table scans).
    ``signer``: sign with botocore's ``SigV4Auth`` on an ``AWSRequest``, as before.
    ``lease-deadlines``: no per-call deadline on lease-table calls (as before issue 13,
    point 3), to see what the deadline costs a worker whose endpoint is saturated.
    """
    import orjson

    from shardline.aws import client, parsing, protocol
    from shardline.aws.settings import AwsSettings

    if "lease-deadlines" in names:

        def unchanged(self: AwsSettings, failover_time: float) -> AwsSettings:
            return self

        AwsSettings.with_lease_deadlines = unchanged  # type: ignore[method-assign]

    if "gc-pause" in names:
        parsing._loads_gc_paused = orjson.loads  # type: ignore[assignment]
    if "signer" in names:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        def signed_headers(
            url: str, target: str, body: bytes, credentials: Any, region: str
        ) -> dict[str, str]:
            request = AWSRequest(
                method="POST",
                url=url,
                data=body,
                headers={"X-Amz-Target": target, "Content-Type": protocol.JSON_CONTENT_TYPE},
            )
            SigV4Auth(credentials, protocol.SIGNING_NAME, region).add_auth(request)
            return {
                str(k): v.decode() if isinstance(v, bytes) else v
                for k, v in request.headers.items()
            }

        # replace the name the client module imported from shardline.aws.signing
        client.signed_headers = signed_headers  # type: ignore[attr-defined]


async def run_shardline(args: argparse.Namespace) -> None:
    import shardline

    undo_optimisations(args.undo.split(",") if args.undo else [])
    from shardline.aws.settings import AwsSettings

    tally = Tally()
    aws = AwsSettings(
        region="us-east-1", dynamodb_endpoint_url=args.ddb, streams_endpoint_url=args.streams
    )
    target: dict[str, Any] = (
        {"stream_arn": args.stream_arn} if args.stream_arn else {"table": args.table}
    )
    consumer = shardline.Consumer(
        make_handler(args.handler, tally, args.sleep),
        application=args.application,
        aws=aws,
        idle_time=args.idle_time,
        failover_time=args.failover_time,
        worker_id=args.worker_id,
        **target,
    )
    metrics = consumer.metrics

    def metric(name: str) -> float:
        """One unlabelled metric's value (collect() of that metric only: cheap)."""
        for family in getattr(metrics, name).collect():
            for sample in family.samples:
                if not sample.name.endswith("_created"):
                    return float(sample.value)
        return 0.0

    def histogram_sum(name: str) -> float:
        for family in getattr(metrics, name).collect():
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    return float(sample.value)
        return 0.0

    async def report() -> None:
        while True:
            emit(
                {
                    "t": time.time(),
                    "records": tally.records,
                    "cpu": time.process_time(),
                    "held": metric("leases_held"),
                    "lost": metric("lease_losses"),
                    "renew_failures": metric("lease_renewal_failures"),
                    "calls": metric("get_records_calls"),
                    "rtt_sum": histogram_sum("get_records_latency"),
                    "lat": tally.take_latencies(),
                }
            )
            await asyncio.sleep(args.report)

    reporter = asyncio.create_task(report())
    try:
        await consumer.run_async(handle_signals=True)
    finally:
        reporter.cancel()


def run_boto3(args: argparse.Namespace) -> None:
    """The obvious boto3 consumer: round-robin get_records + TypeDeserializer on NewImage."""
    import boto3
    from boto3.dynamodb.types import TypeDeserializer

    streams = boto3.client("dynamodbstreams", endpoint_url=args.streams, region_name="us-east-1")
    deserialize = TypeDeserializer().deserialize
    arn = streams.list_streams()["Streams"][0]["StreamArn"] if not args.stream_arn else None
    arn = args.stream_arn or arn
    shards = [
        s["ShardId"] for s in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    ]
    iterators = {
        shard: streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for shard in shards
    }
    records = 0
    next_report = 0.0
    while True:
        for shard, iterator in list(iterators.items()):
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in answer["Records"]:
                image = record["dynamodb"].get("NewImage")
                if image is not None:
                    {name: deserialize(av) for name, av in image.items()}
                records += 1
            iterators[shard] = answer["NextShardIterator"]
            if time.monotonic() >= next_report:
                emit({"t": time.time(), "records": records, "cpu": time.process_time()})
                next_report = time.monotonic() + args.report


def set_gc(mode: str) -> None:
    """The cyclic GC setting of this process (to measure its share; default: untouched)."""
    thresholds, _, freeze = mode.partition("+")
    if thresholds == "off":
        gc.disable()
    elif thresholds != "on":
        gc.set_threshold(*(int(x) for x in thresholds.split(",")))
    if freeze == "freeze":  # experiment: what is alive at start-up is never traversed again
        gc.collect()
        gc.freeze()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("shardline", "boto3"))
    parser.add_argument("--streams", required=True, help="Streams endpoint URL")
    parser.add_argument("--ddb", help="DynamoDB endpoint URL (lease table)")
    parser.add_argument("--stream-arn")
    parser.add_argument("--table")
    parser.add_argument("--application", default="bench")
    parser.add_argument("--worker-id", default="bench-worker")
    parser.add_argument("--handler", default="none")
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--idle-time", type=float, default=0.5)
    parser.add_argument("--failover-time", type=float, default=10.0)
    parser.add_argument("--report", type=float, default=0.5)
    parser.add_argument("--undo", help="experiment: gc-pause,signer (see undo_optimisations)")
    parser.add_argument("--gc", default="on", help="on, off, or gen0,gen1,gen2 thresholds")
    parser.add_argument("--event-loop", default="auto", help="auto, uvloop or asyncio")
    args = parser.parse_args()
    set_gc(args.gc)
    if args.kind == "boto3":
        run_boto3(args)
    else:
        from shardline.event_loop import run

        run(run_shardline(args), event_loop=args.event_loop)


if __name__ == "__main__":
    main()
