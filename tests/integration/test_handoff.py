"""Graceful lease handoff against the local stack: the table writes, the coordinators of
both sides, and two workers that move a shard in the middle of a batch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.config import ConsumerConfig
from shardline.errors import ShutdownError
from shardline.leases import items as f
from shardline.leases.coordinator import CoordinatorSettings, LeaseCoordinator
from shardline.leases.model import Lease
from shardline.leases.table import LeaseTable
from shardline.processor import (
    InitializationInput,
    LeaseLostInput,
    ProcessRecordsInput,
    RecordProcessor,
    ShutdownRequestedInput,
)
from shardline.worker import Worker
from tests.integration.support import (
    VersionedWriter,
    create_stream_table,
    dynamodb,
    lease_items,
    unique,
)

pytestmark = pytest.mark.integration

KCL_ATTRIBUTES = {
    f.KEY, f.OWNER, f.COUNTER, f.CHECKPOINT, f.CHECKPOINT_SUB, f.OWNER_SWITCHES, f.PARENTS,
    f.CHILDREN, f.PENDING, f.CHECKPOINT_OWNER,
}  # fmt: skip


async def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
async def table(local_stack: Any) -> AsyncIterator[LeaseTable]:
    aws = AwsJsonClient.create("dynamodb", AwsSettings(endpoint_url=local_stack.endpoint_url))
    leases = LeaseTable(aws, unique("leases"))
    await leases.ensure_exists()
    yield leases
    await aws.close()


class Side:
    """One coordinator and what its callbacks saw."""

    def __init__(self, table: LeaseTable, worker: str, handoff_timeout: float) -> None:
        self.acquired: list[Lease] = []
        self.lost: list[str] = []
        self.asked: list[str] = []

        async def on_acquired(lease: Lease, token: str) -> None:
            self.acquired.append(lease)

        async def on_lost(key: str) -> None:
            self.lost.append(key)

        async def on_handoff(key: str) -> None:
            self.asked.append(key)

        settings = CoordinatorSettings(
            worker_id=worker, failover_time=30.0, renew_interval=10.0, take_interval=0.2,
            handoff_timeout=handoff_timeout,
        )  # fmt: skip
        self.coordinator = LeaseCoordinator(
            table, settings, on_acquired=on_acquired, on_lost=on_lost, on_handoff=on_handoff
        )

    def token(self, key: str) -> str:
        return self.coordinator._held[key].token


async def two_leases_held_by_a(table: LeaseTable) -> Side:
    for key in ("shard-1", "shard-2"):
        await table.create_if_not_exists(Lease(key=key))
    a = Side(table, "a", handoff_timeout=60.0)
    await a.coordinator.take_round()
    assert sorted(lease.key for lease in a.acquired) == ["shard-1", "shard-2"]
    for key in ("shard-1", "shard-2"):
        await a.coordinator.checkpoint(key, a.token(key), "100", 0)
    return a


async def test_a_steal_asks_and_the_old_owner_checkpoints_then_hands_over(
    table: LeaseTable,
) -> None:
    a = await two_leases_held_by_a(table)
    b = Side(table, "b", handoff_timeout=60.0)
    await b.coordinator.take_round()
    asked = [lease for lease in await table.list_leases() if lease.handoff_pending]
    assert len(asked) == 1 and b.acquired == []
    key = asked[0].key
    assert asked[0].owner == "b" and asked[0].checkpoint_owner == "a"

    counter = asked[0].counter
    await a.coordinator.checkpoint(key, a.token(key), "200", 0)  # the batch in flight
    await a.coordinator.take_round()
    assert a.asked == [key]
    seen = await table.get_lease(key)
    assert seen is not None and seen.counter == counter + 1 and seen.checkpoint == "200"

    await a.coordinator.release(key, a.token(key))
    await wait_for(lambda: _true(b.acquired), 30, "b to take the handed-over lease")
    assert b.acquired[0].key == key and b.acquired[0].checkpoint == "200"
    final = await table.get_lease(key)
    assert final is not None and final.owner == "b" and final.checkpoint_owner is None
    assert final.owner_switches == 1
    await b.coordinator.stop(release=False)
    await a.coordinator.stop(release=False)


@pytest.mark.parametrize(
    "fault", ["race:ops=UpdateItem:count=1", "error:ops=UpdateItem:count=1:applied=1"]
)
async def test_hand_over_survives_a_lost_answer(
    local_stack: Any, table: LeaseTable, fault: str
) -> None:
    a = await two_leases_held_by_a(table)
    b = Side(table, "b", handoff_timeout=60.0)
    await b.coordinator.take_round()
    (asked,) = [lease for lease in await table.list_leases() if lease.handoff_pending]
    await a.coordinator.take_round()
    assert a.asked == [asked.key]  # so release hands over first: the fault hits that write
    local_stack.faults.add(f"{fault}:table={table.name}")
    try:
        await a.coordinator.release(asked.key, a.token(asked.key))
    finally:
        local_stack.faults.clear()
    final = await table.get_lease(asked.key)
    assert final is not None and final.checkpoint_owner is None and final.owner == "b"
    await wait_for(lambda: _true(b.acquired), 30, "b to take the handed-over lease")
    await b.coordinator.stop(release=False)
    await a.coordinator.stop(release=False)


async def test_a_handoff_not_completed_in_time_falls_back_to_a_take(table: LeaseTable) -> None:
    a = await two_leases_held_by_a(table)
    b = Side(table, "b", handoff_timeout=0.5)
    await b.coordinator.take_round()
    await wait_for(lambda: _true(b.acquired), 30, "b to take over after the timeout")
    key = b.acquired[0].key
    with pytest.raises(ShutdownError):
        await a.coordinator.checkpoint(key, a.token(key), "300", 0)
    final = await table.get_lease(key)
    assert final is not None and final.owner == "b" and final.checkpoint_owner is None
    assert final.checkpoint == "100"
    await b.coordinator.stop(release=False)
    await a.coordinator.stop(release=False)


async def test_a_stopping_next_owner_withdraws_its_request(table: LeaseTable) -> None:
    a = await two_leases_held_by_a(table)
    b = Side(table, "b", handoff_timeout=60.0)
    await b.coordinator.take_round()
    await b.coordinator.stop(release=True)
    leases = await table.list_leases()
    assert [(lease.owner, lease.checkpoint_owner) for lease in leases] == [("a", None)] * 2
    await a.coordinator.renew_all()
    assert a.lost == []
    await a.coordinator.stop(release=False)


async def test_items_keep_kcl_attributes_only_and_kcl_items_are_stolen_gracefully(
    local_stack: Any, table: LeaseTable
) -> None:
    client = dynamodb(local_stack.endpoint_url)
    for key in ("shard-1", "shard-2"):  # as a KCL 1.x worker "a" left them
        client.put_item(TableName=table.name, Item={
            "leaseKey": {"S": key}, "leaseOwner": {"S": "a"}, "leaseCounter": {"N": "41"},
            "checkpoint": {"S": "100"}, "checkpointSubSequenceNumber": {"N": "0"},
            "ownerSwitchesSinceCheckpoint": {"N": "0"},
        })  # fmt: skip
    a = Side(table, "a", handoff_timeout=60.0)
    await a.coordinator.start()
    b = Side(table, "b", handoff_timeout=60.0)
    await b.coordinator.take_round()
    asked = [lease for lease in await table.list_leases() if lease.handoff_pending]
    assert len(asked) == 1
    items = await asyncio.to_thread(lease_items, local_stack.endpoint_url, table.name)
    assert {name for item in items for name in item} <= KCL_ATTRIBUTES
    await a.coordinator.stop(release=True)
    await wait_for(lambda: _true(b.acquired), 30, "b to take the handed-over lease")
    items = await asyncio.to_thread(lease_items, local_stack.endpoint_url, table.name)
    assert all(f.CHECKPOINT_OWNER not in item for item in items)
    await b.coordinator.stop(release=False)


async def _true(value: object) -> bool:
    return bool(value)


# --- two workers, a steal in the middle of a batch ---------------------------------------


class Journal:
    """What every processor of both workers did, in order; a gate that holds batches."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []  # worker, what, shard, value
        self.lock = threading.Lock()
        self.holding = threading.Event()
        self.opened = threading.Event()
        self.held: set[str] = set()

    def add(self, worker: str, what: str, shard: str, value: str = "") -> None:
        with self.lock:
            self.events.append((worker, what, shard, value))

    def of(self, worker: str, what: str, shard: str) -> list[str]:
        with self.lock:
            return [v for w, k, s, v in self.events if (w, k, s) == (worker, what, shard)]

    def factory(self, worker: str) -> Callable[[], RecordProcessor]:
        return lambda: JournalProcessor(self, worker)


class JournalProcessor(RecordProcessor):
    """Records each call; checkpoints after each batch; a held batch waits for the gate."""

    def __init__(self, journal: Journal, worker: str) -> None:
        self.journal = journal
        self.worker = worker
        self.shard = "-"

    def initialize(self, initialization: InitializationInput) -> None:
        self.shard = initialization.shard_id
        self.journal.add(self.worker, "init", self.shard, initialization.sequence_number)

    def process_records(self, batch: ProcessRecordsInput) -> None:
        for record in batch.records:
            self.journal.add(self.worker, "record", self.shard, record.sequence_number)
        if batch.records and self.journal.holding.is_set():
            self.journal.held.add(self.shard)
            self.journal.opened.wait(120)
        batch.checkpointer.checkpoint()
        self.journal.add(self.worker, "checkpoint", self.shard, batch.checkpointer.last_checkpoint)

    def shutdown_requested(self, request: ShutdownRequestedInput) -> None:
        self.journal.add(self.worker, "shutdown_requested", self.shard)

    def lease_lost(self, lost: LeaseLostInput) -> None:
        self.journal.add(self.worker, "lease_lost", self.shard)


def worker(stack: Any, table: str, app: str, name: str, journal: Journal) -> Worker:
    config = ConsumerConfig(
        application=app, table=table, worker_id=name, failover_time=20.0, idle_time=0.05,
        parent_poll_interval=0.2, handoff_timeout=120.0,
        aws=AwsSettings(endpoint_url=stack.endpoint_url),
    )  # fmt: skip
    return Worker(config, journal.factory(name))


async def test_a_steal_mid_batch_starts_the_new_owner_at_the_old_owners_last_checkpoint(
    local_stack: Any,
) -> None:
    endpoint = local_stack.endpoint_url
    table, app = unique("handoff"), unique("app")
    create_stream_table(endpoint, table)
    local_stack.split(table)  # two open shards
    writer = VersionedWriter(endpoint, table, keys=24)
    writer.write_round()
    journal = Journal()
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    run_a = asyncio.create_task(worker(local_stack, table, app, "a", journal).run(stop_a))
    run_b: asyncio.Task[None] | None = None
    try:

        async def open_shards() -> list[str]:
            items = await asyncio.to_thread(lease_items, endpoint, app)
            return [i[f.KEY]["S"] for i in items if i[f.CHECKPOINT]["S"] != "SHARD_END"]

        async def a_read_round_one() -> bool:
            done = {
                i[f.CHECKPOINT]["S"] for i in await asyncio.to_thread(lease_items, endpoint, app)
            }
            return len(journal.events) > 0 and "TRIM_HORIZON" not in done

        await wait_for(a_read_round_one, 60, "worker a to read the first round")
        journal.holding.set()
        await asyncio.to_thread(writer.write_round)
        shards = await open_shards()
        assert len(shards) == 2
        await wait_for(lambda: _true(journal.held >= set(shards)), 60, "a batch held per shard")

        run_b = asyncio.create_task(worker(local_stack, table, app, "b", journal).run(stop_b))

        async def asked_shard() -> list[str]:
            items = await asyncio.to_thread(lease_items, endpoint, app)
            return [i[f.KEY]["S"] for i in items if f.CHECKPOINT_OWNER in i]

        await wait_for(lambda: _true_async(asked_shard), 60, "b to ask for a lease")
        (moved,) = await asked_shard()
        assert journal.of("b", "init", moved) == [], "b must wait for the handoff"
        journal.opened.set()
        await wait_for(lambda: _true(journal.of("b", "init", moved)), 60, "b to start the shard")

        last_checkpoint_of_a = journal.of("a", "checkpoint", moved)[-1]
        assert journal.of("b", "init", moved) == [last_checkpoint_of_a]
        assert journal.of("a", "shutdown_requested", moved) and journal.of("a", "lease_lost", moved)
        await asyncio.to_thread(writer.write_round)
        await wait_for(lambda: _true(journal.of("b", "record", moved)), 60, "b to read the shard")
        by_a, by_b = journal.of("a", "record", moved), journal.of("b", "record", moved)
        assert min(int(s) for s in by_b) > int(last_checkpoint_of_a)
        assert not set(by_a) & set(by_b), "a record of the moved shard was delivered twice"
    finally:
        journal.opened.set()
        stop_a.set()
        stop_b.set()
        await asyncio.gather(run_a, *([run_b] if run_b else []), return_exceptions=True)


async def _true_async(probe: Callable[[], Any]) -> bool:
    return bool(await probe())
