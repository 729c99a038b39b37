"""End-to-end latency on the local stack: a writer stamps items, the handler sees them.

Per idle interval, a fresh table with a NEW_IMAGE stream is split once, so it has two
open shards. One shard is kept busy (batches of writes, so it is polled back to back);
on the other, items stamped with ``time.time()`` just before PutItem arrive at random
(exponential gaps). The worker (``workers.py --handler stamp``, its own process, pinned)
reports ``time.time() - ts`` for every stamped item it is handed. Stack and worker run in
separate processes; the writers are threads of this process, on the stack's core.
"""

from __future__ import annotations

import random
import signal
import statistics
import threading
import time
from typing import Any

import boto3
import procs
from throughput import _wait_for

REGION = "us-east-1"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _keys_for(
    stack: procs.Child, table: str, shards: list[str], per_shard: int
) -> dict[str, list[str]]:
    candidates = [f"key-{i}" for i in range(per_shard * len(shards) * 4)]
    routed = stack.send({"cmd": "route", "table": table, "keys": candidates})
    keys: dict[str, list[str]] = {shard: [] for shard in shards}
    for key, shard in zip(candidates, routed, strict=True):
        if shard in keys and len(keys[shard]) < per_shard:
            keys[shard].append(key)
    return keys


def create_table(ddb: Any, table: str, view: str = "NEW_IMAGE") -> None:
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
    )


def client(service: str, port: int) -> Any:
    return boto3.client(service, endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION)


def run_one(stack: procs.Child, cpu: int, idle: float, duration: float) -> dict[str, Any]:
    table = f"latency-{int(idle * 1000)}"
    ddb = client("dynamodb", stack.port)
    create_table(ddb, table)
    busy_shard, quiet_shard = stack.send({"cmd": "split", "table": table})
    keys = _keys_for(stack, table, [busy_shard, quiet_shard], 50)
    worker = procs.start(
        [
            procs.PYTHON,
            str(procs.BENCH_DIR / "workers.py"),
            "shardline",
            "--streams",
            f"http://127.0.0.1:{stack.port}",
            "--ddb",
            f"http://127.0.0.1:{stack.port}",
            "--table",
            table,
            "--application",
            f"{table}-app",
            "--handler",
            "stamp",
            "--idle-time",
            str(idle),
            "--report",
            "0.25",
        ],
        cpu=cpu,
        wait_ready=False,
    )
    stop = threading.Event()
    busy_written = [0]

    def busy_writer() -> None:
        busy_ddb = client("dynamodb", stack.port)
        rng = random.Random(1)
        while not stop.is_set():
            batch = [
                {"PutRequest": {"Item": {
                    "pk": {"S": rng.choice(keys[busy_shard])}, "busy": {"BOOL": True},
                    "ts": {"N": repr(time.time())}, "payload": {"S": "x" * 400},
                }}}
                for _ in range(10)
            ]  # fmt: skip
            busy_ddb.batch_write_item(RequestItems={table: batch})
            busy_written[0] += len(batch)
            time.sleep(0.02)

    try:
        _wait_for(worker, lambda s: s.get("held", 0) >= 2, 60)
        time.sleep(1.0 + idle)  # parent finished, both children polling
        busy = threading.Thread(target=busy_writer, daemon=True)
        busy.start()
        time.sleep(1.0)
        rng = random.Random(2)
        written = 0
        end = time.monotonic() + duration
        while time.monotonic() < end:
            time.sleep(rng.expovariate(1 / 0.08))
            ddb.put_item(
                TableName=table,
                Item={"pk": {"S": rng.choice(keys[quiet_shard])}, "ts": {"N": repr(time.time())}},
            )
            written += 1
        time.sleep(idle + 1.0)
        stop.set()
        busy.join()
        time.sleep(0.5)
        pairs = [pair for status in worker.json_lines() for pair in status["lat"]]
    finally:
        stop.set()
        worker.stop(signal.SIGKILL)
    quiet = [lat * 1e3 for lat, is_busy in pairs if not is_busy]
    busy_lat = [lat * 1e3 for lat, is_busy in pairs if is_busy]
    p50, p95, p99 = (_percentile(quiet, q) for q in (50, 95, 99))
    return {
        "idle_s": idle,
        "stamped_written": written,
        "stamped_seen": len(quiet),
        "busy_written": busy_written[0],
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "max_ms": max(quiet),
        "busy_shard_p50_ms": statistics.median(busy_lat) if busy_lat else None,
        "busy_shard_p99_ms": _percentile(busy_lat, 99) if busy_lat else None,
        "targets": {
            "p50_ms": idle * 1e3 / 2 + 50,
            "p99_ms": idle * 1e3 + 150,
            "met": p50 <= idle * 1e3 / 2 + 50 and p99 <= idle * 1e3 + 150,
        },
    }


def run_latency(quick: bool) -> dict[str, Any]:
    consumer_cpu, server_cpu = procs.cpus()
    duration = 5.0 if quick else 25.0
    stack = procs.start_stack(server_cpu)
    try:
        runs = [run_one(stack, consumer_cpu, idle, duration) for idle in (0.5, 0.1)]
    finally:
        stack.stop()
    return {"duration_s": duration, "runs": runs}


if __name__ == "__main__":
    import orjson

    print(orjson.dumps(run_latency(quick=True), option=orjson.OPT_INDENT_2).decode())
