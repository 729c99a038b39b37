"""Lease-table scan cost: Scan calls and read units per worker, before and after the
adaptive scan pace (``leases/scan_pace.py``).

Starts the local stack, fills a lease table with N leases shaped as on AWS (DynamoDB
Streams shard ids, 25-digit sequence-number checkpoints, a parent shard, worker ids as
``shardline run`` makes them), and runs W lease coordinators in this process: renewing,
scanning, taking and balancing as ``shardline run`` does, without shard consumers. After a
settle period it counts, for a window, each worker's Scan calls, the size of every page
(DynamoDB's item-size rules: attribute names + values) and the read units AWS bills a
consistent Scan page (ceil(bytes / 4 KB)), and extrapolates them to an hour. The fleet is
steady in the window (no shard ends, no worker joins or leaves): the quiet case.

    .venv/bin/python bench/lease_scans.py --leases 10 1000 --seconds 60

"before": every scan at ``take_interval`` (1 s at the default failover of 10 s), as
before the change; "after": the pace of ``ConsumerConfig`` (fast 1 s, quiet 1.5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import time
import uuid
from typing import Any

import orjson
import procs

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.config import ConsumerConfig
from shardline.leases.coordinator import CoordinatorSettings, LeaseCoordinator
from shardline.leases.model import Lease
from shardline.leases.table import LeaseTable

FAILOVER = 10.0


def item_size(item: dict[str, dict[str, Any]]) -> int:
    """DynamoDB's item size: each attribute's name plus its value (S: UTF-8 bytes, N: about
    one byte per two significant digits + 1, SS: the sum of its strings)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, body),) = value.items()
        if kind == "S":
            size += len(body.encode())
        elif kind == "N":
            size += math.ceil(len(body.strip("-").lstrip("0") or "0") / 2) + 1
        elif kind == "SS":
            size += sum(len(s.encode()) for s in body)
        else:
            raise ValueError(f"unexpected attribute type {kind}")
    return size


class Counting:
    """Wraps a client: counts Scan pages, their bytes and their billed read units."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counting = False
        self.scans = 0
        self.pages = 0
        self.bytes = 0
        self.read_units = 0

    async def call(self, operation: str, params: dict[str, Any]) -> Any:
        answer = await self.inner.call(operation, params)
        if operation == "Scan" and self.counting:
            size = sum(item_size(item) for item in answer.get("Items", []))
            self.pages += 1
            self.scans += "ExclusiveStartKey" not in params
            self.bytes += size
            self.read_units += max(1, math.ceil(size / 4096))
        return answer


async def run(endpoint: str, leases: int, workers: int, mode: str, settle: float, seconds: float):  # type: ignore[no-untyped-def]
    config = ConsumerConfig(application="scan-cost", table="things", failover_time=FAILOVER)
    aws = AwsJsonClient.create("dynamodb", AwsSettings(endpoint_url=endpoint))
    name = f"scan-cost-{uuid.uuid4().hex[:8]}"
    setup = LeaseTable(aws, name)
    await setup.ensure_exists()
    rng = uuid.uuid4().hex
    for i in range(leases):
        shard = f"shardId-{1700000000000 + i:020d}-{rng[:8]}"
        parent = f"shardId-{1690000000000 + i:020d}-{rng[8:16]}"
        await setup.create_if_not_exists(
            Lease(
                key=shard,
                checkpoint=f"{4_221_300_000_000_012_345_678_901 + i}",
                parent_shard_ids=frozenset({parent}),
            )
        )
    quiet = config.lease_scan_quiet_interval if mode == "after" else None
    coordinators: list[tuple[LeaseCoordinator, Counting]] = []
    for _ in range(workers):
        counting = Counting(aws)
        worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        settings = CoordinatorSettings(
            worker_id=worker_id,
            failover_time=FAILOVER,
            renew_interval=config.renew_interval,
            take_interval=config.take_interval,
            handoff_timeout=config.handoff_timeout,
            quiet_interval=quiet,
        )

        async def nothing(*args: object) -> None:
            return None

        coordinator = LeaseCoordinator(
            LeaseTable(counting, name),  # type: ignore[arg-type]
            settings,
            on_acquired=nothing,
            on_lost=nothing,
            on_handoff=None,
        )
        await coordinator.start()
        coordinators.append((coordinator, counting))
    await asyncio.sleep(settle)
    for _, counting in coordinators:
        counting.counting = True
    started = time.monotonic()
    await asyncio.sleep(seconds)
    window = time.monotonic() - started
    held = [len(c.held_keys()) for c, _ in coordinators]
    for coordinator, _ in coordinators:
        await coordinator.stop(release=False)
    await aws.close()
    per_worker = [
        {
            "scans_per_hour": round(c.scans * 3600 / window),
            "bytes_per_scan": round(c.bytes / max(c.scans, 1)),
            "read_units_per_scan": round(c.read_units / max(c.scans, 1), 1),
            "read_units_per_hour": round(c.read_units * 3600 / window),
        }
        for _, c in coordinators
    ]
    return {
        "leases": leases,
        "workers": workers,
        "mode": mode,
        "window_s": round(window, 1),
        "held": held,
        "per_worker": per_worker,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leases", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    _, server_cpu = procs.cpus()
    stack = procs.start_stack(server_cpu)
    try:
        endpoint = f"http://127.0.0.1:{stack.port}"
        for leases in args.leases:
            for mode in ("before", "after"):
                result = asyncio.run(
                    run(endpoint, leases, args.workers, mode, args.settle, args.seconds)
                )
                print(orjson.dumps(result).decode(), flush=True)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
