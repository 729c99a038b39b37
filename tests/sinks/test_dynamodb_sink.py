"""DynamoDB to DynamoDB on the local stack: never older over newer, and end to end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from shardline.aws.settings import AwsSettings
from shardline.sinks.base import KeyAttribute, SinkContext, SinkError
from shardline.sinks.dynamodb import DynamoDBSink
from tests.integration.support import create_stream_table, dynamodb, unique
from tests.sinks.guard_support import SCHEMAS, change, snapshot, typed_key
from tests.sinks.support import RunningSinks, wait_for

pytestmark = pytest.mark.integration

SEQ = "_shardline_seq"


def context(stack: Any, schema: Sequence[KeyAttribute]) -> SinkContext:
    return SinkContext(
        table="Source",
        stream_arn="arn:aws:dynamodb:us-east-1:000000000000:table/Source/stream/x",
        key_schema=tuple(schema),
        application="app",
        region="us-east-1",
        stream_view_type="NEW_AND_OLD_IMAGES",
        aws=AwsSettings(region="us-east-1", endpoint_url=stack.endpoint_url),
    )


async def started(stack: Any, schema: Sequence[KeyAttribute]) -> DynamoDBSink:
    sink = DynamoDBSink(unique("target"))
    await sink.start(context(stack, schema))
    return sink


def scan(stack: Any, table: str) -> list[dict[str, Any]]:
    client = dynamodb(stack.endpoint_url)
    pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return [item for page in pages for item in page["Items"]]


def state(stack: Any, sink: DynamoDBSink) -> dict[str, tuple[int, int]]:
    """name -> (value, sequence number) of every target item."""
    return {
        item["name"]["S"]: (int(item["value"]["N"]), int(item[SEQ]["S"]))
        for item in scan(stack, sink.table)
    }


@pytest.fixture(params=["hash_s", "hash_s_range_n"])
def schema(request: pytest.FixtureRequest) -> tuple[KeyAttribute, ...]:
    return SCHEMAS[request.param]


async def test_start_creates_the_target_and_tombstone_tables(local_stack: Any) -> None:
    schema = SCHEMAS["hash_s_range_n"]
    sink = await started(local_stack, schema)
    try:
        client = dynamodb(local_stack.endpoint_url)
        for table in (sink.table, f"{sink.table}-tombstones"):
            described = client.describe_table(TableName=table)["Table"]
            assert [k["AttributeName"] for k in described["KeySchema"]] == ["pk", "sk"]
        again = DynamoDBSink(sink.table)  # existing tables are checked, not recreated
        await again.start(context(local_stack, schema))
        await again.close()
        wrong = DynamoDBSink(sink.table)
        with pytest.raises(SinkError, match=f"sink dynamodb://{sink.table}: .*keyed by pk, sk"):
            await wrong.start(context(local_stack, SCHEMAS["hash_s"]))
        await wrong.close()
    finally:
        await sink.close()


async def test_an_older_modify_replayed_does_not_move_the_item_back(
    local_stack: Any, schema: tuple[KeyAttribute, ...]
) -> None:
    sink = await started(local_stack, schema)
    try:
        await sink.write_changes(
            [change(schema, 1, "a", "INSERT", 1), change(schema, 2, "a", value=2)]
        )
        await sink.write_changes([change(schema, 3, "a", value=3)])
        await sink.write_changes([change(schema, 2, "a", value=2)])
        await sink.write_changes([change(schema, 1, "a", "INSERT", 1)])
        assert state(local_stack, sink) == {"a": (3, 3)}
    finally:
        await sink.close()


async def test_a_replayed_insert_does_not_bring_a_removed_item_back(
    local_stack: Any, schema: tuple[KeyAttribute, ...]
) -> None:
    sink = await started(local_stack, schema)
    try:
        await sink.write_changes(
            [change(schema, 1, "a", "INSERT", 1), change(schema, 2, "b", "INSERT")]
        )
        await sink.write_changes([change(schema, 3, "a", "REMOVE")])
        await sink.write_changes(
            [change(schema, 1, "a", "INSERT", 1), change(schema, 2, "b", "INSERT")]
        )
        assert state(local_stack, sink) == {"b": (0, 2)}
        tombstones = scan(local_stack, f"{sink.table}-tombstones")
        assert [int(t[SEQ]["S"]) for t in tombstones] == [3]
        await sink.write_changes([change(schema, 4, "a", "INSERT", 4)])
        assert state(local_stack, sink) == {"a": (4, 4), "b": (0, 2)}
    finally:
        await sink.close()


async def test_snapshot_rows_never_replace_a_change_nor_resurrect_a_key(
    local_stack: Any, schema: tuple[KeyAttribute, ...]
) -> None:
    sink = await started(local_stack, schema)
    try:
        await sink.write_changes(
            [change(schema, 5, "a", value=5), change(schema, 6, "gone", "REMOVE")]
        )
        rows = [
            snapshot(schema, "a", 99, 0),
            snapshot(schema, "gone", 99, 1),
            snapshot(schema, "new", 7, 2),
        ]
        await sink.write_snapshot(rows)
        await sink.write_snapshot(rows)
        assert state(local_stack, sink) == {"a": (5, 5), "new": (7, 0)}
        await sink.write_changes([change(schema, 1, "new", "MODIFY", 1)])
        assert state(local_stack, sink) == {"a": (5, 5), "new": (1, 1)}
    finally:
        await sink.close()


async def test_the_same_batch_twice_leaves_the_table_the_same(
    local_stack: Any, schema: tuple[KeyAttribute, ...]
) -> None:
    sink = await started(local_stack, schema)
    batch = [
        change(schema, 1, "a", "INSERT", 1),
        change(schema, 2, "b", "INSERT", 2),
        change(schema, 3, "a", "MODIFY", 3),
        change(schema, 4, "b", "REMOVE"),
        change(schema, 5, "c", "INSERT", 5),
    ]
    try:
        await sink.write_changes(batch)
        await sink.write_changes(batch)
        assert state(local_stack, sink) == {"a": (3, 3), "c": (5, 5)}
        assert typed_key(schema, "a")["pk"] == {"S": "a"}
    finally:
        await sink.close()


async def test_a_lost_lease_stops_writes(local_stack: Any) -> None:
    schema = SCHEMAS["hash_s"]
    sink = await started(local_stack, schema)
    try:
        shard = sink.open_shard("s-1")
        await shard.write([change(schema, 1, "a", "INSERT", 1)])
        await shard.close(lost=True)
        with pytest.raises(BaseException):  # noqa: B017 - any refusal will do
            await shard.write([change(schema, 2, "a", "MODIFY", 2)])
        assert state(local_stack, sink) == {"a": (1, 1)}
    finally:
        await sink.close()


def write_source(endpoint_url: str, table: str, keys: int, rounds: int) -> None:
    client = dynamodb(endpoint_url)
    for round_ in range(rounds):
        for i in range(keys):
            client.put_item(
                TableName=table,
                Item={
                    "pk": {"S": f"k{i:03d}"},
                    "round": {"N": str(round_)},
                    "price": {"N": "12.50"},
                    "tags": {"SS": ["b", "a"]},
                    "blob": {"B": b"\x00\x01"},
                    "nested": {"M": {"big": {"N": "12345678901234567890.123456789"}}},
                },
            )
        client.update_item(
            TableName=table,
            Key={"pk": {"S": f"k{round_:03d}"}},
            UpdateExpression="SET touched = :t",
            ExpressionAttributeValues={":t": {"BOOL": True}},
        )
        if round_ % 2 == 1:
            client.delete_item(TableName=table, Key={"pk": {"S": f"k{round_:03d}"}})


async def test_replicates_a_table_end_to_end(local_stack: Any) -> None:
    source = unique("orders")
    create_stream_table(local_stack.endpoint_url, source)
    write_source(local_stack.endpoint_url, source, keys=15, rounds=4)
    sink = DynamoDBSink(unique("replica"))

    def replica() -> dict[str, dict[str, Any]]:
        try:
            items = scan(local_stack, sink.table)
        except Exception:
            return {}
        return {i["pk"]["S"]: {k: v for k, v in i.items() if k != SEQ} for i in items}

    async with RunningSinks(local_stack, source, [sink]):
        expected = {i["pk"]["S"]: i for i in scan(local_stack, source)}
        await wait_for(lambda: replica() == expected, 60, "the replica to match")
        client = dynamodb(local_stack.endpoint_url)
        client.delete_item(TableName=source, Key={"pk": {"S": "k000"}})
        client.put_item(TableName=source, Item={"pk": {"S": "k999"}, "late": {"BOOL": True}})
        expected = {i["pk"]["S"]: i for i in scan(local_stack, source)}
        await wait_for(lambda: replica() == expected, 60, "the later changes")
    assert len(expected) == 14  # k001 and k003 deleted, k000 deleted, k999 added
