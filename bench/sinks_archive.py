"""Sinks: archive -- changes per second into S3 (local stack) and local Parquet, and memory.

``.venv/bin/python bench/sinks_archive.py`` (``--changes``, ``--repeats``). The same
GetRecords pages (``pages.make_record``: NEW_AND_OLD_IMAGES MODIFY records, ~1 KB items of
every attribute type, 1000 a page) are replayed by each variant, each in its own fresh
process, pinned to one core (``taskset``) when it can be:

* **baseline**, the consumer a user writes by hand with boto3: each page parsed the way
  boto3 parses it (botocore's JSON parser with the GetRecords shape, ``TypeDeserializer``
  on keys and images), each record written as one JSON line (``json.dumps``), one
  ``put_object`` per page (uncompressed JSON Lines) to the local stack's S3;
* **shardline s3 jsonl/gzip**, **s3 jsonl/zstd**, **s3 parquet**: the pages parsed as the
  consumer parses them, delivered through ``DeliveryProcessor`` (batches sized by the
  archive's roll options, ``roll_records`` 50,000) into ``ArchiveSink`` on S3;
* **shardline local parquet**: the same into ``file://`` Parquet files (fsync and rename);
* **memory**: ``--memory-mb`` of changes (1 GB: an hour of a 1 GB/hour stream) through the
  same path into local Parquet with ``roll_bytes=64MB``; peak RSS of the process.

The clock covers parsing, batching, encoding and writing; building the page bytes is
outside it. The local stack runs in its own process (``bench/stack.py``). Prints one table
and writes JSON to ``bench/results/sinks-archive-<UTC timestamp>.json``. These are
measurements, not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(ROOT / "src"))

PER_PAGE = 1000
VARIANTS = {
    "baseline": "boto3 by hand: botocore parser + TypeDeserializer, put_object per page",
    "s3-jsonl-gzip": "shardline s3:// format=jsonl (gzip)",
    "s3-jsonl-zstd": "shardline s3:// format=jsonl compression=zstd",
    "s3-parquet": "shardline s3:// format=parquet (zstd)",
    "local-parquet": "shardline file:// format=parquet (zstd), fsync + rename",
}


def make_pages(changes: int, seed: int = 7) -> list[bytes]:
    """GetRecords bodies of PER_PAGE records each, sequence numbers increasing."""
    import random

    import orjson
    from pages import make_record

    rng = random.Random(seed)
    recent = time.time() - changes / 10  # ten changes a second up to now, as a live stream
    pages = []
    for first in range(0, changes, PER_PAGE):  # page by page: little memory while building
        records = [make_record(rng, i) for i in range(first, min(first + PER_PAGE, changes))]
        for i, record in enumerate(records, start=first):
            record["dynamodb"]["ApproximateCreationDateTime"] = float(int(recent + i / 10))
        pages.append(orjson.dumps({"Records": records, "NextShardIterator": "x"}))
    return pages


def run_baseline(pages: list[bytes], endpoint: str, bucket: str) -> float:
    import boto3
    from decode import _baseline_parts
    from sinks_postgres import _json_default

    parse, deserializer = _baseline_parts()
    deserialize = deserializer.deserialize
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    start = time.perf_counter()
    for number, body in enumerate(pages):
        answer = parse(body)
        lines = []
        for record in answer["Records"]:
            data = record["dynamodb"]
            row = {
                "event_id": record["eventID"],
                "event_name": record["eventName"],
                "keys": {k: deserialize(v) for k, v in data["Keys"].items()},
                "sequence_number": data["SequenceNumber"],
                "approximate_creation_time": str(data["ApproximateCreationDateTime"]),
                "old_image": {k: deserialize(v) for k, v in data.get("OldImage", {}).items()},
                "new_image": {k: deserialize(v) for k, v in data.get("NewImage", {}).items()},
            }
            lines.append(json.dumps(row, default=_json_default))
        s3.put_object(Bucket=bucket, Key=f"baseline/{number:08d}.jsonl", Body="\n".join(lines))
    return time.perf_counter() - start


class _Checkpointer:
    """What DeliveryProcessor needs of a checkpointer, in memory."""

    enabled = True
    value: str | None = None

    async def checkpoint_async(self, sequence_number: str | None = None, sub: int = 0) -> None:
        self.value = sequence_number


async def deliver(url: str, pages: list[bytes], endpoint: str, repeat: int = 1) -> float:
    """Replay ``pages`` (``repeat`` times, sequence numbers moved on) through the sink."""
    import msgspec

    from shardline.aws.settings import AwsSettings
    from shardline.delivery.config import DeliveryConfig
    from shardline.delivery.processor import DeliveryProcessor, DeliverySettings
    from shardline.metrics import Metrics
    from shardline.processor import InitializationInput, ProcessRecordsInput, ShardEndedInput
    from shardline.records import StreamRecord
    from shardline.sinks.base import KeyAttribute, SinkContext
    from shardline.sinks.batching import apply_batch_hints
    from shardline.sinks.fanout import SinkFanout, SinkRoute
    from shardline.sinks.registry import sink_from_url
    from shardline.streams.wire import decode_records_answer

    sink = sink_from_url(url)
    keys = (KeyAttribute("pk", "S"), KeyAttribute("sk", "N", "RANGE"))
    aws = AwsSettings(endpoint_url=endpoint, region="us-east-1")
    await sink.start(SinkContext("bench", "arn:bench", keys, "bench", aws=aws))
    metrics = Metrics()
    config = apply_batch_hints(DeliveryConfig(), [sink])
    fanout = SinkFanout([SinkRoute(sink)], None, "arn:bench", metrics)
    processor = DeliveryProcessor(fanout, config, DeliverySettings("arn:bench", metrics=metrics))
    shard = "shardId-00000001700000000000-bench000"
    checkpointer: Any = _Checkpointer()
    await processor.initialize(InitializationInput(shard, "TRIM_HORIZON"))
    step = 100 * PER_PAGE * len(pages)
    start = time.perf_counter()
    for round_ in range(repeat):
        for body in pages:
            wires, _ = decode_records_answer(body)
            if round_:
                wires = [_moved(w, round_ * step, msgspec) for w in wires]
            records = [StreamRecord(w, shard) for w in wires]
            await processor.process_records(ProcessRecordsInput(shard, records, checkpointer, 0))
    await processor.shard_ended(ShardEndedInput(shard, checkpointer))
    seconds = time.perf_counter() - start
    await sink.close()
    return seconds


def _moved(wire: Any, offset: int, msgspec: Any) -> Any:
    data = msgspec.structs.replace(
        wire.dynamodb, SequenceNumber=str(int(wire.dynamodb.SequenceNumber) + offset)
    )
    return msgspec.structs.replace(wire, dynamodb=data)


def worker_main(args: argparse.Namespace) -> int:
    import pyarrow

    pyarrow.set_cpu_count(1)
    pyarrow.set_io_thread_count(1)
    pages = make_pages(args.changes if args.worker != "memory" else 10 * PER_PAGE)
    out = tempfile.mkdtemp(prefix="archive-bench-")
    try:
        changes = args.changes
        if args.worker == "baseline":
            seconds = run_baseline(pages, args.endpoint, args.bucket)
        elif args.worker == "memory":
            size = sum(len(p) for p in pages)
            repeat = max(1, args.memory_mb * (1 << 20) // size)
            url = f"file://{out}?format=parquet&roll_bytes=64MB"
            seconds = asyncio.run(deliver(url, pages, args.endpoint, repeat))
            changes = repeat * 10 * PER_PAGE
        else:
            url = {
                "s3-jsonl-gzip": f"s3://{args.bucket}/{args.worker}?format=jsonl",
                "s3-jsonl-zstd": f"s3://{args.bucket}/{args.worker}?format=jsonl&compression=zstd",
                "s3-parquet": f"s3://{args.bucket}/{args.worker}?format=parquet",
                "local-parquet": f"file://{out}?format=parquet",
            }[args.worker]
            url += "&roll_records=50000"
            seconds = asyncio.run(deliver(url, pages, args.endpoint))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"seconds": seconds, "changes": changes, "rss_mb": rss}))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


def run_worker(
    args: argparse.Namespace, variant: str, endpoint: str, bucket: str
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", variant, "--endpoint", endpoint,
               "--bucket", bucket, "--changes", str(args.changes),
               "--memory-mb", str(args.memory_mb)]  # fmt: skip
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}
    env.setdefault("AWS_ACCESS_KEY_ID", "bench")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def empty_bucket(endpoint: str, bucket: str) -> None:
    """Delete what a run wrote (the local stack keeps objects in memory)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def start_stack() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "stack.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()
    return process, f"http://127.0.0.1:{line[1]}"


def driver_main(args: argparse.Namespace) -> int:
    import boto3

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    stack, endpoint = start_stack()
    try:
        bucket = "archive-bench"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in [*VARIANTS, "memory"]}
        wanted = set((args.only or ",".join(VARIANTS)).split(","))
        chosen = [v for v in VARIANTS if v in wanted]
        for _ in range(args.repeats):
            for variant in chosen:
                runs[variant].append(run_worker(args, variant, endpoint, bucket))
                empty_bucket(endpoint, bucket)
        if args.memory_mb:
            runs["memory"].append(run_worker(args, "memory", endpoint, bucket))
    finally:
        assert stack.stdin is not None
        stack.stdin.close()
        stack.wait(timeout=30)
    report = summarize(args, runs)
    render(report)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = BENCH_DIR / "results" / f"sinks-archive-{stamp}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


def summarize(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    rows = {}
    for variant, results in runs.items():
        if not results:
            continue
        rates = [r["changes"] / r["seconds"] for r in results]
        rows[variant] = {
            "what": VARIANTS.get(variant, f"{args.memory_mb} MB of changes, roll_bytes=64MB"),
            "changes_per_second": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
            "changes": results[0]["changes"],
            "peak_rss_mb": max(r["rss_mb"] for r in results),
        }
    base = rows["baseline"]["changes_per_second"] if "baseline" in rows else float("nan")
    for row in rows.values():
        row["x_baseline"] = row["changes_per_second"] / base
    command = " ".join(["bench/sinks_archive.py", *sys.argv[1:]])
    return {"command": command, "cpu_count": os.cpu_count(), "variants": rows}


def render(report: dict[str, Any]) -> None:
    print(f"{'variant':<15} {'changes/s':>10} {'min..max':>17} {'x base':>7} {'RSS MB':>7}  what")
    for name, row in report["variants"].items():
        spread = f"{row['min']:.0f}..{row['max']:.0f}"
        print(
            f"{name:<15} {row['changes_per_second']:>10.0f} {spread:>17} "
            f"{row['x_baseline']:>7.1f} {row['peak_rss_mb']:>7.0f}  {row['what']}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-mb", type=int, default=1024, help="0: no memory run")
    parser.add_argument("--only", help="comma-separated variants (default: all)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return worker_main(args) if args.worker else driver_main(args)


if __name__ == "__main__":
    sys.exit(main())
