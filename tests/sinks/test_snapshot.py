"""Snapshot, then stream: items written before the stream existed end up in the replica."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.errors import ResourceNotFoundError
from shardline.sinks.base import SnapshotRow
from shardline.sinks.postgres import PostgresSink
from shardline.sinks.runtime import describe_source
from shardline.sinks.segments import SegmentTable
from shardline.sinks.snapshot import SnapshotRun
from tests.integration.support import dynamodb, unique
from tests.sinks.support import RunningSinks, postgres_items, source_items, wait_for

pytestmark = pytest.mark.integration


def table_without_stream(endpoint_url: str, items: int) -> str:
    """A table filled before its stream is enabled (NEW_AND_OLD_IMAGES)."""
    name = unique("before")
    client = dynamodb(endpoint_url)
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(items):
        client.put_item(
            TableName=name,
            Item={"pk": {"S": f"k{i:03d}"}, "v": {"N": "0"}, "price": {"N": "1.50"}},
        )
    client.update_table(
        TableName=name,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return name


def change_some(endpoint_url: str, table: str, items: int, round_: int) -> None:
    """Modify some items, delete one, add one."""
    client = dynamodb(endpoint_url)
    for i in range(round_, items, 7):
        client.put_item(TableName=table, Item={"pk": {"S": f"k{i:03d}"}, "v": {"N": str(round_)}})
    client.delete_item(TableName=table, Key={"pk": {"S": f"k{round_ * 3:03d}"}})
    client.put_item(TableName=table, Item={"pk": {"S": f"new{round_}"}, "v": {"N": "1"}})


async def test_snapshot_then_stream_equals_the_source(local_stack: Any, pg_dsn: str) -> None:
    items = 80
    table = table_without_stream(local_stack.endpoint_url, items)
    sink = PostgresSink(pg_dsn, table="replica", snapshot=True)
    async with RunningSinks(local_stack, table, [sink]) as running:
        change_some(local_stack.endpoint_url, table, items, 1)  # while the snapshot may run
        await wait_for(lambda: len(postgres_items(pg_dsn, "replica")) >= items - 5, 60, "a copy")
        change_some(local_stack.endpoint_url, table, items, 2)
        expected = source_items(local_stack.endpoint_url, table)
        await wait_for(
            lambda: postgres_items(pg_dsn, "replica") == expected, 60, "the replica to match"
        )
        segments = await segment_table(local_stack, running).list()
    assert len(segments) == 4 and all(s.done and s.owner is None for s in segments)
    assert sum(s.copied for s in segments) >= items - 2


def segment_table(stack: Any, running: RunningSinks) -> SegmentTable:
    client = AwsJsonClient.create(
        "dynamodb", AwsSettings(region="us-east-1", endpoint_url=stack.endpoint_url)
    )
    return SegmentTable(client, f"{running.application}-snapshot")


async def test_two_workers_share_the_segments(local_stack: Any, pg_dsn: str) -> None:
    items = 60
    table = table_without_stream(local_stack.endpoint_url, items)
    application = unique("app")
    first = PostgresSink(pg_dsn, table="replica", snapshot=True, pool_size=2)
    second = PostgresSink(pg_dsn, table="replica", snapshot=True, pool_size=2)
    async with (
        RunningSinks(local_stack, table, [first], application=application, worker_id="w1") as one,
        RunningSinks(local_stack, table, [second], application=application, worker_id="w2"),
    ):
        change_some(local_stack.endpoint_url, table, items, 1)
        expected = source_items(local_stack.endpoint_url, table)
        await wait_for(
            lambda: postgres_items(pg_dsn, "replica") == expected, 60, "the replica to match"
        )
        segments = await segment_table(local_stack, one).list()
    assert [s.done for s in segments] == [True] * 4
    assert sum(s.copied for s in segments) == items


class Recording(PostgresSink):
    """A PostgreSQL sink that remembers the ordinals of the snapshot rows it was given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ordinals: list[int] = []

    async def write_snapshot(self, rows: Sequence[SnapshotRow]) -> None:
        await super().write_snapshot(rows)
        self.ordinals += [r.ordinal for r in rows]
        await asyncio.sleep(0.05)  # a slow target: a page at a time


async def test_a_crashed_workers_segment_resumes_from_its_last_page(
    local_stack: Any, pg_dsn: str
) -> None:
    items = 60
    table = table_without_stream(local_stack.endpoint_url, items)
    settings = AwsSettings(region="us-east-1", endpoint_url=local_stack.endpoint_url)
    client = AwsJsonClient.create("dynamodb", settings)
    context = await describe_source(client, table, "", "app", settings)
    segments_table = unique("app") + "-snapshot"

    def run(sink: PostgresSink, worker: str) -> SnapshotRun:
        return SnapshotRun(
            client, context, [sink], worker_id=worker, segment_table=segments_table,
            segments=1, parallel=1, failover_time=1.0, page_limit=7,
        )  # fmt: skip

    crashed = Recording(pg_dsn, table="log", mode="changelog", pool_size=1)
    await crashed.start(context)
    segments = SegmentTable(client, segments_table)
    task = asyncio.create_task(run(crashed, "crashed").run(asyncio.Event()))

    async def copied() -> int:
        try:
            listed = await segments.list()
        except ResourceNotFoundError:  # not created yet
            return 0
        return listed[0].copied if listed else 0

    while await copied() < 20:
        assert not task.done()
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await crashed.close()
    (left,) = await segments.list()
    assert not left.done and left.owner == "crashed" and left.position is not None
    assert 20 <= left.copied < items and left.copied % 7 == 0

    resumed = Recording(pg_dsn, table="log", mode="changelog", pool_size=1)
    await resumed.start(context)
    try:
        await asyncio.wait_for(run(resumed, "other").run(asyncio.Event()), 30)
    finally:
        await resumed.close()
    assert resumed.ordinals[0] == left.copied  # from the last page, not from scratch
    (done,) = await segments.list()
    assert done.done and done.copied == items
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT pk, _seq FROM log WHERE _event_name = 'SNAPSHOT'").fetchall()
    assert sorted(seq for _, seq in rows) == list(range(items))  # no duplicate, none missing
    assert {pk for pk, _ in rows} == {f"k{i:03d}" for i in range(items)}
    await client.close()


async def test_a_restarted_worker_with_the_same_id_takes_its_segment_back(
    local_stack: Any, pg_dsn: str
) -> None:
    items = 30
    table = table_without_stream(local_stack.endpoint_url, items)
    settings = AwsSettings(region="us-east-1", endpoint_url=local_stack.endpoint_url)
    client = AwsJsonClient.create("dynamodb", settings)
    context = await describe_source(client, table, "", "app", settings)
    segments = SegmentTable(client, unique("app") + "-snapshot")
    (segment,) = await segments.ensure(1)
    taken = await segments.take(segment, "same-host")  # the process that then died
    assert taken is not None
    sink = PostgresSink(pg_dsn, table="state", pool_size=1)
    await sink.start(context)
    run = SnapshotRun(
        client, context, [sink], worker_id="same-host", segment_table=segments.name,
        segments=1, failover_time=60.0,
    )  # fmt: skip
    try:
        await asyncio.wait_for(run.run(asyncio.Event()), 15)
    finally:
        await sink.close()
        await client.close()
    assert len(postgres_items(pg_dsn, "state")) == items
