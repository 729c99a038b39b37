"""shardline.Consumer against a local stack with faults on: nothing lost, order kept."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from shardline import StreamRecord
from shardline.testing import ConsumerRun, LocalStreams, StreamTable

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hostile() -> Iterator[LocalStreams]:
    """A stack whose reads misbehave in every way the service may."""
    with LocalStreams.start(
        children_first=True, describe_page_size=1, iterator_ttl=1.0, eager_shard_end=False, seed=3
    ) as streams:
        yield streams


def versions(run: ConsumerRun) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for record in run.snapshot():
        image = record.new_image or record.old_image or {}
        seen.setdefault(record.keys["pk"], []).append(int(image["version"]))
    return seen


def write(table: StreamTable, keys: int, version: int) -> None:
    table.put_many({"pk": f"k{i}", "version": version} for i in range(keys))


def assert_all_in_order(run: ConsumerRun, keys: int, last: int) -> None:
    def complete() -> bool:
        seen = versions(run)
        return all(
            sorted(set(seen.get(f"k{i}", []))) == list(range(1, last + 1)) for i in range(keys)
        )

    run.wait_for(complete, timeout=90, what="every version of every key")
    for key, got in versions(run).items():
        first_seen = list(dict.fromkeys(got))
        assert first_seen == sorted(first_seen), f"{key} out of order: {got}"


def test_stream_read_faults(hostile: LocalStreams) -> None:
    table = hostile.create_table()
    write(table, 20, 1)
    table.split()
    hostile.faults.add("throttle:ops=GetRecords,GetShardIterator:rate=0.2")
    hostile.faults.add("throttle:ops=DescribeStream:count=3")
    hostile.faults.add("error:ops=streams:rate=0.05")
    hostile.faults.add("drop:ops=GetRecords:rate=0.05")
    hostile.faults.add("drop:ops=GetRecords,GetShardIterator:count=2")
    hostile.faults.add("empty:rate=0.3")
    try:
        with hostile.consume(lambda records: time.sleep(0.01), table) as run:
            write(table, 20, 2)
            table.rollover(parent_open_for=0.5)
            write(table, 20, 3)
            table.split(parent_open_for=0.3)
            write(table, 20, 4)
            assert_all_in_order(run, 20, 4)
        assert set(hostile.faults.fired) >= {"throttle", "error", "drop", "empty"}
    finally:
        hostile.faults.clear()


@pytest.fixture(scope="module")
def local() -> Iterator[LocalStreams]:
    with LocalStreams.start(seed=4) as streams:
        yield streams


def test_lease_table_faults(local: LocalStreams) -> None:
    table = local.create_table()
    app = f"{table.name}-app"
    write(table, 10, 1)
    table.split()
    local.faults.add(f"throttle:ops=writes:table={app}:rate=0.2")
    # bursts, so that races surely happen in a short run (a rate may not fire at all)
    local.faults.add(f"race:ops=UpdateItem:table={app}:rate=1:count=2")
    local.faults.add(f"race:ops=UpdateItem:table={app}:rate=1:count=2:applied=1")
    local.faults.add(f"error:ops=UpdateItem,PutItem:table={app}:rate=0.05:applied=1")
    try:
        with local.consume(lambda records: None, table, application=app) as run:
            write(table, 10, 2)
            table.rollover()
            write(table, 10, 3)
            assert_all_in_order(run, 10, 3)
        assert local.faults.fired["race"] >= 1
    finally:
        local.faults.clear()


def test_trimmed_records_are_reported_loudly(
    local: LocalStreams, caplog: pytest.LogCaptureFixture
) -> None:
    table = local.create_table()
    write(table, 5, 1)
    local.stack.configure(retention=0.5)
    try:
        time.sleep(1.0)  # version 1 is older than the retention now
        with caplog.at_level(logging.ERROR), local.consume(lambda records: None, table) as run:
            # written once the shard is being read, so that version 2 is read well inside
            # the retention even when a busy machine slows the worker's start-up
            worker = run.consumer.worker
            run.wait_for(lambda: "processing" in {s for s, _ in worker.shard_states().values()})
            write(table, 5, 2)
            run.wait_for(lambda: len(run.records) >= 5)
            write(table, 5, 3)
            run.wait_for(lambda: all(v[-1] == 3 for v in versions(run).values()))
    finally:
        local.stack.configure(retention=None)
    assert all(1 not in v for v in versions(run).values())  # trimmed before they were read


def test_ttl_deletes_reach_the_processor_with_the_service_identity(local: LocalStreams) -> None:
    table = local.create_table()
    table.put({"pk": "a", "version": 1})
    table.expire({"pk": "a"})
    with local.consume(lambda records: None, table) as run:
        records = run.wait_for_records(2)
    removal: StreamRecord = records[-1]
    assert removal.event_name == "REMOVE"
    assert removal.user_identity == {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
    assert removal.old_image == {"pk": "a", "version": 1}


def test_a_re_enabled_stream_is_followed_when_the_table_was_named(local: LocalStreams) -> None:
    table = local.create_table()
    table.put({"pk": "old", "version": 1})
    with local.consume(lambda records: None, table) as run:
        run.wait_for_records(1)
        table.disable_stream()
        table.enable_stream()
        table.put({"pk": "new", "version": 1})
        run.wait_for(lambda: "new" in run.keys(), timeout=30)  # noqa: SIM118 - a method
    assert run.keys().index("old") < run.keys().index("new")
