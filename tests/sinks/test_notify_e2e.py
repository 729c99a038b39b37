"""Two `shardline run` workers with a webhook sink and a FIFO SQS sink, rollovers, a SIGKILL.

Every change reaches the receiver (and the queue) at least once, the first sighting of
each change comes in per-key order, and every request's signature verifies.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.support import create_stream_table, dynamodb, unique, wait_until
from tests.sinks.webhook_receiver import SECRET, Receiver, receiver_on_thread

pytestmark = pytest.mark.integration

KEYS = 20


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver on its own thread and loop (the test itself blocks on subprocesses)."""
    with receiver_on_thread(Receiver()) as server:
        yield server


def start_worker(stack: Any, table: str, app: str, worker: str, sinks: list[str], log: Path) -> Any:
    command = [sys.executable, "-m", "shardline.cli", "run", "--table", table,
               "--application", app, "--endpoint-url", stack.endpoint_url,
               "--worker-id", worker, "--failover-time", "3", "--idle-time", "0.1",
               "--batch-size", "100", "--shard-sync-interval", "2"]  # fmt: skip
    for sink in sinks:
        command += ["--sink", sink]
    env = {**os.environ, "HOOK_SECRET": SECRET}
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)


def churn(stack: Any, table: str, rng: random.Random, steps: int, versions: dict[str, int]) -> None:
    """Puts only; each put of a key carries the key's next version number."""
    client = dynamodb(stack.endpoint_url)
    for _ in range(steps):
        key = f"k{rng.randrange(KEYS):02d}"
        versions[key] = versions.get(key, 0) + 1
        item = {"pk": {"S": key}, "v": {"N": str(versions[key])}}
        client.put_item(TableName=table, Item=item)


def first_versions(bodies: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Per key, the versions in the order first seen (duplicates after the first dropped)."""
    seen: set[str] = set()
    order: dict[str, list[int]] = {}
    for body in bodies:
        if body["id"] in seen:
            continue
        seen.add(body["id"])
        order.setdefault(body["key"]["pk"], []).append(int(body["new"]["v"]))
    return order


def test_webhook_and_fifo_queue_two_workers_rollovers_and_a_sigkill(
    local_stack: Any, receiver: Receiver, tmp_path: Path
) -> None:
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    sqs = boto3.client("sqs", endpoint_url=local_stack.endpoint_url, region_name="us-east-1")
    queue = sqs.create_queue(QueueName=unique("changes") + ".fifo",
                             Attributes={"FifoQueue": "true"})["QueueUrl"]  # fmt: skip
    sinks = [f"{receiver.url}?secret_env=HOOK_SECRET&concurrency=16", f"sqs://{queue}"]
    app = unique("app")
    rng = random.Random(12)
    versions: dict[str, int] = {}
    first = start_worker(local_stack, table, app, "w1", sinks, tmp_path / "w1.log")
    second = start_worker(local_stack, table, app, "w2", sinks, tmp_path / "w2.log")
    queued: list[dict[str, Any]] = []

    def drain() -> int:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages")
        if messages:
            queued.extend(json.loads(m["Body"]) for m in messages)
            receipts = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)]  # fmt: skip
            sqs.delete_message_batch(QueueUrl=queue, Entries=receipts)
        return len({m["id"] for m in queued})

    try:
        churn(local_stack, table, rng, 150, versions)
        local_stack.rollover(table)
        churn(local_stack, table, rng, 150, versions)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        local_stack.rollover(table)
        churn(local_stack, table, rng, 150, versions)
        total = sum(versions.values())
        wait_until(lambda: len(receiver.first_seen()) >= total, 120, "every change at the hook")
        wait_until(lambda: drain() >= total, 120, "every change in the FIFO queue")
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    assert all(r.verified for r in receiver.requests)
    expected = {key: list(range(1, n + 1)) for key, n in versions.items()}
    assert first_versions([r.json() for r in receiver.first_seen()]) == expected
    assert first_versions(queued) == expected
