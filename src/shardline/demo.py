"""`shardline demo`: the whole thing on one laptop.

Starts the embedded local stack with shard rollovers, creates a table with a stream,
writes a steady flow of versioned changes, runs two worker processes, and shows a live
view of shards, owners, checkpoints and records processed until Ctrl-C or SIGTERM. The
workers also archive every change to Parquet files in the demo's temporary directory
(:mod:`shardline.demo_archive`); the view shows the files, the changes archived and a
DuckDB query over them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.children import StopSignals, die_with_parent
from shardline.demo_archive import ArchiveWatch, archive_url
from shardline.leases.model import Lease
from shardline.leases.table import LeaseTable
from shardline.views import short_sequence, short_shard

TABLE = "Orders"
APPLICATION = "orders-demo"
KEYS = 50
WORKERS = ("worker-A", "worker-B")
OPEN_SHARDS = 4


@dataclass
class DemoState:
    writes: int = 0
    started: float = field(default_factory=time.monotonic)


def run_demo(*, duration: float | None, rollover_every: float, writes_per_second: float) -> None:
    """Run the demo until SIGINT or SIGTERM (or ``duration`` seconds).

    The first signal stops the writer and the live view, asks both workers to stop
    (SIGTERM) and waits for them; a second one kills them and exits at once. The workers
    get SIGKILL from the kernel if this process dies without stopping them.
    """
    from shardline.local import LocalStack

    workers: list[subprocess.Popen[bytes]] = []
    with (
        StopSignals(on_second=lambda signum: _kill_and_exit(workers, signum)) as signals,
        LocalStack(rollover_every=rollover_every) as stack,
        tempfile.TemporaryDirectory() as tmp,
    ):
        local = stack.client_settings
        env = {**local.child_env(os.environ), "SHARDLINE_DEMO_DIR": tmp}
        aws = local.aws_settings()
        local.setdefault_credentials(os.environ)  # the same as the workers': os.environ's
        asyncio.run(_create_table(aws))
        for _ in range(OPEN_SHARDS - 1):
            stack.split(TABLE)
        try:
            for name in WORKERS:
                if not signals.stopping:
                    workers.append(_start_worker(name, stack.endpoint_url, env, tmp))
            if not signals.stopping:
                asyncio.run(_write_and_watch(aws, Path(tmp), duration, writes_per_second, signals))
        except KeyboardInterrupt:
            pass
        finally:
            _stop_workers(workers)


def _start_worker(
    name: str, endpoint_url: str, env: dict[str, str], tmp: str
) -> subprocess.Popen[bytes]:
    log = open(Path(tmp) / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the worker
    command = [
        sys.executable, "-m", "shardline.cli", "--log-level", "WARNING", "run",
        "shardline.demo_app:handle", "--table", TABLE, "--application", APPLICATION,
        "--endpoint-url", endpoint_url, "--worker-id", name, "--failover-time", "6",
        "--sink", archive_url(tmp),
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        env={**env, "DEMO_WORKER": name},
        stdout=log,
        stderr=log,
        preexec_fn=die_with_parent(),  # only prctl and getppid run in the child
    )


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _kill_and_exit(workers: list[subprocess.Popen[bytes]], signum: int) -> None:
    """A second stop signal: kill the workers and exit at once. (No ``wait`` here: this
    runs in a signal handler, maybe inside a ``wait`` that holds Popen's lock.)"""
    for worker in workers:
        with contextlib.suppress(OSError):
            os.kill(worker.pid, signal.SIGKILL)
    os._exit(128 + signum)


async def _create_table(aws: AwsSettings) -> None:
    dynamodb = AwsJsonClient.create("dynamodb", aws)
    try:
        await dynamodb.call(
            "CreateTable",
            {
                "TableName": TABLE,
                "KeySchema": [{"AttributeName": "order_id", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "order_id", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
                "StreamSpecification": {
                    "StreamEnabled": True,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            },
        )
    finally:
        await dynamodb.close()


async def _write_and_watch(
    aws: AwsSettings,
    tmp: Path,
    duration: float | None,
    writes_per_second: float,
    signals: StopSignals,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    remove = signals.on_stop(lambda: loop.call_soon_threadsafe(stop.set))
    dynamodb = AwsJsonClient.create("dynamodb", aws)
    state = DemoState()
    writer = asyncio.create_task(_write_forever(dynamodb, state, writes_per_second))
    leases = LeaseTable(dynamodb, APPLICATION)
    archive = ArchiveWatch(tmp)
    ticks = 0
    try:
        with Live(refresh_per_second=2, screen=False) as live:
            while not stop.is_set() and (
                duration is None or time.monotonic() - state.started < duration
            ):
                rows = await leases.list_leases() if await leases.exists() else []
                await asyncio.to_thread(archive.refresh, ticks % 3 == 0)
                ticks += 1
                live.update(_view(rows, state, _processed_counts(tmp), archive.view()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        remove()
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await dynamodb.close()


async def _write_forever(dynamodb: AwsJsonClient, state: DemoState, per_second: float) -> None:
    versions = [0] * KEYS
    while True:
        key = random.randrange(KEYS)
        versions[key] += 1
        await dynamodb.call(
            "PutItem",
            {
                "TableName": TABLE,
                "Item": {
                    "order_id": {"S": f"order-{key:03d}"},
                    "version": {"N": str(versions[key])},
                    "status": {"S": random.choice(["placed", "paid", "shipped"])},
                    "written_at": {"N": f"{time.time():.3f}"},
                },
            },
        )
        state.writes += 1
        await asyncio.sleep(1.0 / per_second)


def _processed_counts(tmp: Path) -> dict[str, int]:
    counts = {}
    for name in WORKERS:
        try:
            counts[name] = int((tmp / f"{name}.count").read_text() or 0)
        except (FileNotFoundError, ValueError):
            counts[name] = 0
    return counts


def _view(
    leases: list[Lease], state: DemoState, counts: dict[str, int], archive: Table | None = None
) -> Group:
    table = Table(title="leases (one per shard)", title_justify="left")
    for column in ("shard", "parent", "owner", "checkpoint"):
        table.add_column(column)
    for lease in sorted(leases, key=lambda item: item.key):
        parent = next(iter(lease.parent_shard_ids), None)
        table.add_row(
            short_shard(lease.key), short_shard(parent), lease.owner or "-",
            short_sequence(lease.checkpoint),
        )  # fmt: skip
    elapsed = time.monotonic() - state.started
    summary = Text(
        f"{elapsed:5.0f}s  writes: {state.writes}  processed: "
        + "  ".join(f"{name}={count}" for name, count in counts.items())
        + f"  total={sum(counts.values())}   (Ctrl-C to stop)"
    )
    return Group(summary, table) if archive is None else Group(summary, table, archive)
