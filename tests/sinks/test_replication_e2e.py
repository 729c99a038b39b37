"""Two `shardline run --sink` workers, shard rollovers, a SIGKILL: the replica equals the table.

INSERT, MODIFY, REMOVE and TTL deletes on many keys, for the PostgreSQL state and
changelog modes and for a DynamoDB target, all at once (three sinks on one run: a batch is
checkpointed only when every sink holds it).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration.support import create_stream_table, dynamodb, unique, wait_until
from tests.sinks.support import postgres_items, source_items

pytestmark = pytest.mark.integration

KEYS = 60


def start_worker(stack: Any, table: str, app: str, worker: str, sinks: list[str], log: Path) -> Any:
    command = [sys.executable, "-m", "shardline.cli", "run", "--table", table,
               "--application", app, "--endpoint-url", stack.endpoint_url,
               "--worker-id", worker, "--failover-time", "3", "--idle-time", "0.1",
               "--batch-size", "200", "--shard-sync-interval", "2"]  # fmt: skip
    for sink in sinks:
        command += ["--sink", sink]
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=dict(os.environ), stdout=out, stderr=out)


def churn(stack: Any, table: str, rng: random.Random, steps: int) -> None:
    client = dynamodb(stack.endpoint_url)
    for _ in range(steps):
        key = f"k{rng.randrange(KEYS):03d}"
        roll = rng.random()
        if roll < 0.15:
            client.delete_item(TableName=table, Key={"pk": {"S": key}})
        elif roll < 0.2:
            stack.expire(table, {"pk": {"S": key}})
        else:
            item = {"pk": {"S": key}, "v": {"N": str(rng.randrange(10**9))}, "s": {"S": "x" * 50}}
            client.put_item(TableName=table, Item=item)


def dynamodb_items(endpoint_url: str, table: str) -> dict[str, dict[str, Any]]:
    items = source_items(endpoint_url, table)
    for item in items.values():
        item.pop("_shardline_seq", None)
    return items


def test_two_workers_rollovers_and_a_sigkill(local_stack: Any, pg_dsn: str, tmp_path: Path) -> None:
    table = unique("orders")
    target = unique("replica")
    create_stream_table(local_stack.endpoint_url, table)
    app = unique("app")
    sinks = [
        f"{pg_dsn}?table=state",
        f"{pg_dsn}?table=changes&mode=changelog",
        f"dynamodb://{target}",
    ]
    rng = random.Random(7)
    first = start_worker(local_stack, table, app, "w1", sinks, tmp_path / "w1.log")
    second = start_worker(local_stack, table, app, "w2", sinks, tmp_path / "w2.log")
    third = None
    try:
        churn(local_stack, table, rng, 300)
        local_stack.rollover(table)
        churn(local_stack, table, rng, 300)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        local_stack.rollover(table)
        churn(local_stack, table, rng, 300)
        third = start_worker(local_stack, table, app, "w3", sinks, tmp_path / "w3.log")
        churn(local_stack, table, rng, 200)
        expected = source_items(local_stack.endpoint_url, table)
        wait_until(lambda: postgres_items(pg_dsn, "state") == expected, 120, "the state table")
        wait_until(
            lambda: dynamodb_items(local_stack.endpoint_url, target) == expected,
            60,
            "the DynamoDB replica",
        )
    finally:
        for process in (first, second, third):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    with psycopg.connect(pg_dsn) as conn:
        duplicates = conn.execute(
            "SELECT count(*) - count(DISTINCT (_shard_id, _seq)) FROM changes"
        ).fetchone()
        changes = conn.execute("SELECT count(*) FROM changes").fetchone()
    assert duplicates == (0,)
    assert changes is not None and changes[0] >= 1000  # every write is a change (>=1 per step)
