"""Graceful lease handoff: the pure decisions, and the consumer's side of a handoff."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shardline.config import ConsumerConfig
from shardline.consumer import ConsumerSettings, ConsumerState, EndReason, ShardConsumer
from shardline.errors import ConfigError
from shardline.leases.handoff import (
    HandoffStep,
    PendingHandoff,
    asked_to_hand_over,
    next_step,
    still_held,
)
from shardline.leases.items import item_from_lease, lease_from_item
from shardline.leases.model import Lease
from shardline.processor import (
    InitializationInput,
    LeaseLostInput,
    ProcessRecordsInput,
    RecordProcessor,
    ShutdownRequestedInput,
)
from tests.unit.test_consumer_recovery import Host, ScriptedStreams

PENDING = PendingHandoff("s", previous="old", requested_at=100.0)


def asked(owner: str = "new", checkpoint_owner: str | None = "old", counter: int = 7) -> Lease:
    return Lease(key="s", owner=owner, checkpoint_owner=checkpoint_owner, counter=counter)


# --- the next owner's steps -------------------------------------------------------------


def test_the_next_owner_waits_while_the_old_owner_still_holds() -> None:
    assert next_step(PENDING, asked(), "new", now=101.0, timeout=5.0) is HandoffStep.WAIT


def test_handed_over_means_acquire() -> None:
    done = asked(checkpoint_owner=None, counter=8)
    assert next_step(PENDING, done, "new", now=101.0, timeout=5.0) is HandoffStep.ACQUIRE


def test_not_handed_over_within_the_timeout_means_take_over() -> None:
    assert next_step(PENDING, asked(), "new", now=105.0, timeout=5.0) is HandoffStep.TAKE_OVER


def test_a_lease_that_went_elsewhere_or_away_is_abandoned() -> None:
    for seen in (None, asked(owner="third", checkpoint_owner=None), asked(checkpoint_owner="x")):
        assert next_step(PENDING, seen, "new", now=101.0, timeout=5.0) is HandoffStep.ABANDON


def test_withdrawn_request_is_abandoned() -> None:
    withdrawn = asked(owner="old", checkpoint_owner=None)
    assert next_step(PENDING, withdrawn, "new", now=101.0, timeout=5.0) is HandoffStep.ABANDON


# --- the current owner's side ------------------------------------------------------------


def test_only_the_checkpoint_owner_is_asked_to_hand_over() -> None:
    assert asked_to_hand_over(asked(), "old")
    assert not asked_to_hand_over(asked(), "new")
    assert not asked_to_hand_over(asked(owner="old", checkpoint_owner=None), "old")


def test_actual_owner_during_a_handoff_is_the_old_owner() -> None:
    lease = asked()
    assert lease.handoff_pending and lease.actual_owner == "old"
    assert not Lease(key="s", owner="a").handoff_pending


def test_still_held_needs_the_same_counter_and_the_actual_owner() -> None:
    assert still_held(asked(), "old", 7)
    assert not still_held(asked(), "old", 6)  # taken (counter moved)
    assert not still_held(asked(owner="b", checkpoint_owner=None), "old", 7)
    assert not still_held(None, "old", 7)


def test_checkpoint_owner_is_kcl3s_attribute_and_round_trips() -> None:
    item = item_from_lease(asked())
    assert item["checkpointOwner"] == {"S": "old"} and item["leaseOwner"] == {"S": "new"}
    assert lease_from_item(item) == asked()
    assert "checkpointOwner" not in item_from_lease(Lease(key="s", owner="a"))


# --- the consumer's side ----------------------------------------------------------------


class HandoffHost(Host):
    """Records the order of the host calls; ``parents`` says how often parents are not done."""

    def __init__(self, parents: int = 0, holds: bool = True) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.parents = parents
        self.holds = holds

    async def parents_done(self, lease: Lease) -> bool:
        self.parents -= 1
        return self.parents < 0

    async def still_holds(self, shard_id: str, token: str) -> bool:
        self.calls.append("still_holds")
        return self.holds

    async def write_checkpoint(self, shard_id: str, token: str, value: str, sub: int,
                               children: Any) -> None:  # fmt: skip
        self.calls.append(f"checkpoint {int(value) if value.isdigit() else value}")
        await super().write_checkpoint(shard_id, token, value, sub, children)

    async def hand_over(self, shard_id: str, token: str) -> None:
        self.calls.append("hand_over")


class BlockingRecorder(RecordProcessor):
    """Blocks in its first batch until released; checkpoints after each batch."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.in_batch = threading.Event()
        self.release = threading.Event()

    def initialize(self, initialization: InitializationInput) -> None:
        self.calls.append("initialize")

    def process_records(self, batch: ProcessRecordsInput) -> None:
        self.calls.append(f"records {[int(r.sequence_number) for r in batch.records]}")
        self.in_batch.set()
        self.release.wait(10)
        batch.checkpointer.checkpoint()

    def shutdown_requested(self, request: ShutdownRequestedInput) -> None:
        self.calls.append("shutdown_requested")

    def lease_lost(self, lost: LeaseLostInput) -> None:
        self.calls.append("lease_lost")


def consumer_for(host: HandoffHost, processor: RecordProcessor, executor: Any) -> ShardConsumer:
    return ShardConsumer(
        Lease(key="shardId-00000001700000000000-00000001", owner="old", counter=3),
        "token",
        host=host,
        streams=ScriptedStreams(8),  # type: ignore[arg-type]
        processor=processor,
        executor=executor,
        settings=ConsumerSettings("arn", 1000, 0.0, 0.01, 0.01, 0.05),
    )


def end_of(consumer: ShardConsumer) -> EndReason | None:
    """The end reason read afresh (a type checker keeps attributes narrowed across awaits)."""
    return consumer.end_reason


async def test_a_handoff_mid_batch_finishes_the_batch_checkpoints_then_hands_over() -> None:
    host = HandoffHost()
    processor = BlockingRecorder(host.calls)
    with ThreadPoolExecutor(2) as executor:
        consumer = consumer_for(host, processor, executor)
        task = asyncio.create_task(consumer.run())
        await asyncio.to_thread(processor.in_batch.wait, 10)
        consumer.request_handoff()
        assert consumer.state is ConsumerState.PROCESSING
        processor.release.set()
        await asyncio.wait_for(task, 10)
    assert host.calls == ["initialize", "records [1, 2]", "checkpoint 2", "shutdown_requested",
                          "hand_over", "lease_lost"]  # fmt: skip
    assert end_of(consumer) is EndReason.HANDED_OVER
    assert host.finished == ["handed-over"]


async def test_a_shard_that_waited_for_its_parents_re_reads_its_lease_first() -> None:
    host = HandoffHost(parents=1, holds=True)
    processor = BlockingRecorder(host.calls)
    processor.release.set()
    with ThreadPoolExecutor(2) as executor:
        await asyncio.wait_for(consumer_for(host, processor, executor).run(), 10)
    assert host.calls[:2] == ["still_holds", "initialize"]


async def test_a_lease_that_moved_while_waiting_is_dropped_without_initializing() -> None:
    host = HandoffHost(parents=1, holds=False)
    processor = BlockingRecorder(host.calls)
    with ThreadPoolExecutor(2) as executor:
        consumer = consumer_for(host, processor, executor)
        await asyncio.wait_for(consumer.run(), 10)
    assert host.calls == ["still_holds"]
    assert consumer.end_reason is EndReason.LEASE_LOST and host.finished == ["lease-lost"]


async def test_a_shard_that_did_not_wait_reads_nothing_extra() -> None:
    host = HandoffHost()
    processor = BlockingRecorder(host.calls)
    processor.release.set()
    with ThreadPoolExecutor(2) as executor:
        await asyncio.wait_for(consumer_for(host, processor, executor).run(), 10)
    assert "still_holds" not in host.calls


async def test_a_handoff_while_waiting_for_parents_hands_over_without_processor_calls() -> None:
    host = HandoffHost(parents=10**6)
    processor = BlockingRecorder(host.calls)
    with ThreadPoolExecutor(2) as executor:
        consumer = consumer_for(host, processor, executor)
        task = asyncio.create_task(consumer.run())
        await asyncio.sleep(0)
        consumer.request_handoff()
        await asyncio.wait_for(task, 10)
    assert host.calls == ["hand_over"]
    assert host.finished == ["handed-over"]


def test_the_handoff_timeout_is_a_validated_setting() -> None:
    config = ConsumerConfig(application="app", table="orders")
    assert config.handoff_timeout == 5.0
    assert config.with_changes(handoff_timeout=0).handoff_timeout == 0
    with pytest.raises(ConfigError):
        config.with_changes(handoff_timeout=-1)
