"""One worker, in-process, against the local stack over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from shardline import Consumer, StreamRecord
from tests.integration.support import (
    VersionedWriter,
    assert_per_key_order,
    create_stream_table,
    unique,
)

pytestmark = pytest.mark.integration


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def recorder(events: list[tuple[str, int]]) -> Callable[[list[StreamRecord]], None]:
    def handle(records: list[StreamRecord]) -> None:
        for r in records:
            image = r.new_image or r.old_image or {}
            events.append((r.keys["pk"], int(image["version"])))

    return handle


def consumer_for(stack: Any, table: str, handle: object, **settings: Any) -> Consumer:
    settings.setdefault("failover_time", 3.0)
    settings.setdefault("idle_time", 0.05)
    return Consumer(
        handle,
        table=table,
        application=unique("app"),
        endpoint_url=stack.endpoint_url,
        **settings,
    )


async def test_every_change_in_key_order_across_three_generations(local_stack: Any) -> None:
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    writer = VersionedWriter(local_stack.endpoint_url, table, keys=12)
    writer.write_round()
    local_stack.split(table)
    writer.write_round()
    local_stack.rollover(table)
    writer.write_round()

    events: list[tuple[str, int]] = []
    stop = asyncio.Event()
    consumer = consumer_for(local_stack, table, recorder(events))
    task = asyncio.create_task(consumer.run_async(stop))
    await wait_for(lambda: set(events) >= writer.expected(), 30, "the first three generations")

    # Live: the shards roll over again while the consumer is reading.
    await asyncio.to_thread(local_stack.rollover, table)
    await asyncio.to_thread(writer.write_round)
    await wait_for(lambda: set(events) >= writer.expected(), 30, "the fourth generation")
    stop.set()
    await asyncio.wait_for(task, 30)

    assert len(events) == len(set(events)), "no duplicates without a failure"
    assert_per_key_order(events)


async def test_trim_horizon_starts_at_the_oldest_record(local_stack: Any) -> None:
    table = unique("th")
    create_stream_table(local_stack.endpoint_url, table)
    writer = VersionedWriter(local_stack.endpoint_url, table, keys=5)
    writer.write_round()
    events: list[tuple[str, int]] = []
    stop = asyncio.Event()
    consumer = consumer_for(local_stack, table, recorder(events), starting_position="TRIM_HORIZON")
    task = asyncio.create_task(consumer.run_async(stop))
    await wait_for(lambda: set(events) >= writer.expected(), 20, "the records written before")
    health = consumer.worker.health()
    assert health["ready"] and health["healthy"], health
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_latest_skips_what_was_written_before_start(local_stack: Any) -> None:
    table = unique("latest")
    create_stream_table(local_stack.endpoint_url, table)
    writer = VersionedWriter(local_stack.endpoint_url, table, keys=5)
    writer.write_round()
    before = writer.expected()
    events: list[tuple[str, int]] = []
    stop = asyncio.Event()
    consumer = consumer_for(local_stack, table, recorder(events), starting_position="LATEST")
    task = asyncio.create_task(consumer.run_async(stop))
    worker = consumer.worker
    await wait_for(
        lambda: any(state == "processing" for state, _ in worker.shard_states().values()),
        20,
        "the consumer to be reading",
    )
    await asyncio.to_thread(writer.write_round)
    after = writer.expected() - before
    await wait_for(lambda: set(events) >= after, 20, "the records written after start")
    stop.set()
    await asyncio.wait_for(task, 30)
    assert not set(events) & before


async def test_failing_batch_is_retried_never_skipped(local_stack: Any) -> None:
    table = unique("retry")
    create_stream_table(local_stack.endpoint_url, table)
    writer = VersionedWriter(local_stack.endpoint_url, table, keys=3)
    writer.write_round()
    events: list[tuple[str, int]] = []
    failures = [2]

    def flaky(records: list[StreamRecord]) -> None:
        if failures[0] > 0:
            failures[0] -= 1
            raise RuntimeError("downstream unavailable")
        recorder(events)(records)

    stop = asyncio.Event()
    consumer = consumer_for(local_stack, table, flaky, retry_base_delay=0.05)
    task = asyncio.create_task(consumer.run_async(stop))
    await wait_for(lambda: set(events) >= writer.expected(), 20, "the retried batch")
    stop.set()
    await asyncio.wait_for(task, 30)
    assert failures[0] == 0
    assert_per_key_order(events)


async def test_a_signal_noted_during_start_up_is_a_clean_stop(
    local_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from shardline import early_signals

    table = unique("early")
    create_stream_table(local_stack.endpoint_url, table)
    monkeypatch.setattr(early_signals, "_noted", signal.SIGTERM)
    consumer = consumer_for(local_stack, table, recorder([]))
    await asyncio.wait_for(consumer.run_async(handle_signals=True), 30)
    assert consumer.worker.started.is_set(), "it started, then stopped gracefully"
