"""The embedded local stack over real HTTP, with boto3 clients (DynamoDB and Streams)."""

from __future__ import annotations

import http.client
import itertools
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError

from shardline.local import LocalStack

pytestmark = pytest.mark.integration

CREDENTIALS = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
SHARD_ID = re.compile(r"^shardId-\d{20}-[0-9a-f]{8}$")
_names = itertools.count()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack() as running:
        yield running


@pytest.fixture(scope="module")
def ddb(stack: LocalStack) -> Any:
    return boto3.client("dynamodb", endpoint_url=stack.endpoint_url, **CREDENTIALS)


@pytest.fixture(scope="module")
def streams(stack: LocalStack) -> Any:
    return boto3.client("dynamodbstreams", endpoint_url=stack.endpoint_url, **CREDENTIALS)


@pytest.fixture
def make_table(ddb: Any) -> Callable[..., tuple[str, str]]:
    """Create a fresh table with a stream; return (table name, stream ARN)."""

    def make(view_type: str = "NEW_AND_OLD_IMAGES", range_key: bool = False) -> tuple[str, str]:
        name = f"local-stack-{next(_names)}"
        schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
        attrs = [{"AttributeName": "pk", "AttributeType": "S"}]
        if range_key:
            schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
            attrs.append({"AttributeName": "sk", "AttributeType": "S"})
        ddb.create_table(
            TableName=name,
            KeySchema=schema,
            AttributeDefinitions=attrs,
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type},
        )
        return name, ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]

    return make


def put(ddb: Any, table: str, key: str, value: int) -> None:
    ddb.put_item(TableName=table, Item={"pk": {"S": key}, "v": {"N": str(value)}})


def all_shards(streams: Any, arn: str, **kwargs: Any) -> list[dict[str, Any]]:
    shards: list[dict[str, Any]] = []
    while True:
        description = streams.describe_stream(StreamArn=arn, **kwargs)["StreamDescription"]
        shards += description["Shards"]
        if "LastEvaluatedShardId" not in description:
            return shards
        kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]


def iterator(streams: Any, arn: str, shard_id: str, kind: str = "TRIM_HORIZON", **kw: Any) -> str:
    return str(
        streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType=kind, **kw)[
            "ShardIterator"
        ]
    )


def drain(streams: Any, arn: str, shard_id: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Read a closed shard to its end (fails if the shard never ends)."""
    records: list[dict[str, Any]] = []
    next_iterator: str | None = iterator(streams, arn, shard_id)
    for _ in range(1000):
        if next_iterator is None:
            return records
        page = streams.get_records(ShardIterator=next_iterator, Limit=limit)
        records += page["Records"]
        next_iterator = page.get("NextShardIterator")
    raise AssertionError(f"shard {shard_id} never ended")


def read_open(streams: Any, arn: str, shard_id: str) -> list[dict[str, Any]]:
    page = streams.get_records(ShardIterator=iterator(streams, arn, shard_id), Limit=1000)
    assert "NextShardIterator" in page
    return list(page["Records"])


def error_code(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as info:
        call()
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(info.value.response["Error"]["Code"])


def raw_streams_call(stack: LocalStack, operation: str, body: dict[str, Any]) -> tuple[int, Any]:
    connection = http.client.HTTPConnection(stack.host, stack.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/",
            body=orjson.dumps(body),
            headers={
                "X-Amz-Target": f"DynamoDBStreams_20120810.{operation}",
                "Content-Type": "application/x-amz-json-1.0",
            },
        )
        response = connection.getresponse()
        return response.status, orjson.loads(response.read())
    finally:
        connection.close()


# --- 1. shard graph shape --------------------------------------------------------------


def test_shard_ids_sequence_numbers_and_lineage(
    stack: LocalStack, ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    put(ddb, table, "a", 1)
    children = stack.split(table)
    grandchildren = stack.rollover(table)
    shards = all_shards(streams, arn)
    assert len(shards) == 5 and shards == stack.shards(table)
    assert all(SHARD_ID.match(shard["ShardId"]) for shard in shards)
    parents = {shard["ShardId"]: shard.get("ParentShardId") for shard in shards}
    assert parents[shards[0]["ShardId"]] is None
    assert {parents[child] for child in children} == {shards[0]["ShardId"]}
    assert [parents[g] for g in grandchildren] == children
    starts = [int(s["SequenceNumberRange"]["StartingSequenceNumber"]) for s in shards]
    assert starts == sorted(starts)
    for shard in shards:
        seq_range = shard["SequenceNumberRange"]
        assert len(seq_range["StartingSequenceNumber"]) >= 21
        closed = shard["ShardId"] not in grandchildren
        assert ("EndingSequenceNumber" in seq_range) == closed


# --- 2. routing by hash-key range, all write kinds ---------------------------------------


def test_writes_of_every_kind_route_each_key_to_one_child(
    stack: LocalStack, ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    children = stack.split(table)
    keys = [f"key-{i}" for i in range(12)]
    for key in keys[:6]:
        put(ddb, table, key, 1)
    ddb.batch_write_item(
        RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": k}}}} for k in keys[6:]]}
    )
    for key in keys[:4]:
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": key}},
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"N": "2"}},
        )
    ddb.transact_write_items(
        TransactItems=[
            {"Delete": {"TableName": table, "Key": {"pk": {"S": keys[4]}}}},
            {"Put": {"TableName": table, "Item": {"pk": {"S": keys[5]}, "v": {"N": "3"}}}},
        ]
    )
    ddb.delete_item(TableName=table, Key={"pk": {"S": keys[6]}})
    owner: dict[str, str] = {}
    total = 0
    for child in children:
        for record in read_open(streams, arn, child):
            key = record["dynamodb"]["Keys"]["pk"]["S"]
            assert owner.setdefault(key, child) == child
            total += 1
    assert set(owner) == set(keys) and set(owner.values()) == set(children)
    assert total == 12 + 4 + 2 + 1
    assert owner == {key: stack.graph(table).route(orjson.dumps({"S": key})) for key in keys}


def test_update_that_creates_an_item_writes_one_insert(
    ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    ddb.update_item(
        TableName=table,
        Key={"pk": {"S": "new"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"N": "1"}},
    )
    shard = all_shards(streams, arn)[0]["ShardId"]
    records = read_open(streams, arn, shard)
    assert [r["eventName"] for r in records] == ["INSERT"]
    assert records[0]["dynamodb"]["NewImage"] == {"pk": {"S": "new"}, "v": {"N": "1"}}


def test_failed_transaction_writes_no_records(
    ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    put(ddb, table, "exists", 1)
    with pytest.raises(ClientError):
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "phantom"}}}},
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": {"S": "exists"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    put(ddb, table, "after", 2)
    shard = all_shards(streams, arn)[0]["ShardId"]
    keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in read_open(streams, arn, shard)]
    assert keys == ["exists", "after"]


# --- 3. record shape ---------------------------------------------------------------------


def test_record_shape_for_insert_modify_remove(
    ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table(range_key=True)
    item = {"pk": {"S": "p"}, "sk": {"S": "s"}, "b": {"B": b"\x00\xff"}, "n": {"N": "1.50"}}
    ddb.put_item(TableName=table, Item=item)
    ddb.put_item(TableName=table, Item={**item, "n": {"N": "2"}})
    ddb.delete_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "s"}})
    records = read_open(streams, arn, all_shards(streams, arn)[0]["ShardId"])
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    for record in records:
        assert set(record) >= {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion"}
        assert record["eventSource"] == "aws:dynamodb" and record["awsRegion"] == "us-east-1"
        body = record["dynamodb"]
        assert body["Keys"] == {"pk": {"S": "p"}, "sk": {"S": "s"}}
        assert body["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert body["SizeBytes"] > 0 and body["SequenceNumber"].isdigit()
        assert "ApproximateCreationDateTime" in body
    insert, modify, remove = (r["dynamodb"] for r in records)
    assert insert["NewImage"] == item and "OldImage" not in insert
    assert modify["OldImage"] == item and modify["NewImage"]["n"] == {"N": "2"}
    assert remove["OldImage"]["n"] == {"N": "2"} and "NewImage" not in remove
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_keys_only_view(ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]) -> None:
    table, arn = make_table(view_type="KEYS_ONLY")
    put(ddb, table, "k", 1)
    (record,) = read_open(streams, arn, all_shards(streams, arn)[0]["ShardId"])
    assert "NewImage" not in record["dynamodb"] and "OldImage" not in record["dynamodb"]


# --- 4. DescribeStream -------------------------------------------------------------------


def test_describe_stream_paging_and_child_filter(
    stack: LocalStack, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    root = stack.shards(table)[0]["ShardId"]
    children = stack.split(table)
    stack.rollover(table)
    first = streams.describe_stream(StreamArn=arn, Limit=2)["StreamDescription"]
    assert len(first["Shards"]) == 2 and first["LastEvaluatedShardId"] == children[0]
    paged = all_shards(streams, arn, Limit=1)
    assert [s["ShardId"] for s in paged] == [s["ShardId"] for s in stack.shards(table)]
    kids = streams.describe_stream(
        StreamArn=arn, ShardFilter={"Type": "CHILD_SHARDS", "ShardId": root}
    )["StreamDescription"]["Shards"]
    assert [s["ShardId"] for s in kids] == children
    assert error_code(lambda: streams.describe_stream(StreamArn=arn, Limit=101)) == (
        "ValidationException"
    )
    missing = arn.replace(table, "no-such-table")
    assert error_code(lambda: streams.describe_stream(StreamArn=missing)) == (
        "ResourceNotFoundException"
    )


def test_children_first_flag_reverses_the_listing(
    stack: LocalStack, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    stack.split(table)
    stack.children_first = True
    try:
        listed = [s["ShardId"] for s in all_shards(streams, arn, Limit=2)]
    finally:
        stack.children_first = False
    assert listed == [s["ShardId"] for s in stack.shards(table)][::-1]


# --- 5. GetShardIterator -----------------------------------------------------------------


def test_iterator_types(ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]) -> None:
    table, arn = make_table()
    shard = all_shards(streams, arn)[0]["ShardId"]
    latest_before = iterator(streams, arn, shard, "LATEST")
    for i in range(3):
        put(ddb, table, f"k{i}", i)
    seqs = [r["dynamodb"]["SequenceNumber"] for r in read_open(streams, arn, shard)]

    def first_seqs(it: str) -> list[str]:
        records = streams.get_records(ShardIterator=it)["Records"]
        return [r["dynamodb"]["SequenceNumber"] for r in records]

    assert first_seqs(latest_before) == seqs
    assert first_seqs(iterator(streams, arn, shard, "LATEST")) == []
    at = iterator(streams, arn, shard, "AT_SEQUENCE_NUMBER", SequenceNumber=seqs[1])
    after = iterator(streams, arn, shard, "AFTER_SEQUENCE_NUMBER", SequenceNumber=seqs[1])
    assert first_seqs(at) == seqs[1:]
    assert first_seqs(after) == seqs[2:]


def test_iterator_errors(
    stack: LocalStack, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    child = stack.split(table)[0]
    start = int(
        stack.graph(table).describe().shards[1]["SequenceNumberRange"]["StartingSequenceNumber"]
    )
    cases = {
        "ValidationException": lambda: iterator(streams, arn, child, "AT_SEQUENCE_NUMBER"),
        "ResourceNotFoundException": lambda: iterator(
            streams, arn, "shardId-00000000000000000001-0000abcd"
        ),
        "TrimmedDataAccessException": lambda: iterator(
            streams, arn, child, "AT_SEQUENCE_NUMBER", SequenceNumber=str(start - 1)
        ),
    }
    for code, call in cases.items():
        assert error_code(call) == code
    assert error_code(lambda: iterator(streams, arn, child, "AFTER_SEQUENCE_NUMBER")) == (
        "ValidationException"
    )


# --- 6. GetRecords -----------------------------------------------------------------------


def test_get_records_limit_and_iterator_errors(
    ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    shard = all_shards(streams, arn)[0]["ShardId"]
    it = iterator(streams, arn, shard)
    assert error_code(lambda: streams.get_records(ShardIterator=it, Limit=1001)) == (
        "ValidationException"
    )
    assert error_code(lambda: streams.get_records(ShardIterator="garbage")) == (
        "ExpiredIteratorException"
    )
    assert error_code(lambda: streams.get_records(ShardIterator=arn + "|1|AAAA")) == (
        "ExpiredIteratorException"
    )
    ddb.delete_table(TableName=table)
    assert error_code(lambda: streams.get_records(ShardIterator=it)) == (
        "ResourceNotFoundException"
    )


def test_closed_shard_ends_without_next_iterator(
    stack: LocalStack, ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    shard = stack.shards(table)[0]["ShardId"]
    for i in range(5):
        put(ddb, table, f"k{i}", i)
    stack.rollover(table)
    first = streams.get_records(ShardIterator=iterator(streams, arn, shard), Limit=3)
    assert len(first["Records"]) == 3 and "NextShardIterator" in first
    last = streams.get_records(ShardIterator=first["NextShardIterator"], Limit=3)
    assert len(last["Records"]) == 2 and "NextShardIterator" not in last
    child = stack.shards(table)[-1]["ShardId"]
    empty = streams.get_records(ShardIterator=iterator(streams, arn, child))
    assert empty["Records"] == [] and "NextShardIterator" in empty


def test_pages_are_capped_by_bytes(ddb: Any, make_table: Callable[..., tuple[str, str]]) -> None:
    table, arn = make_table()
    with LocalStack(max_page_bytes=2_000) as small:
        client = boto3.client("dynamodbstreams", endpoint_url=small.endpoint_url, **CREDENTIALS)
        for i in range(10):
            ddb.put_item(TableName=table, Item={"pk": {"S": f"k{i}"}, "pad": {"S": "x" * 500}})
        shard = small.shards(table)[0]["ShardId"]
        page = client.get_records(ShardIterator=iterator(client, arn, shard), Limit=1000)
        assert 1 <= len(page["Records"]) < 10
        assert len(orjson.dumps(page["Records"])) <= 2_000 + 100


# --- 7. errors are AWS-shaped 400s -------------------------------------------------------


def test_errors_are_http_400_with_aws_json_body(stack: LocalStack) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("GetRecords", {"ShardIterator": "garbage"}, "ExpiredIteratorException"),
        ("GetRecords", {"ShardIterator": "garbage", "Limit": 5000}, "ValidationException"),
        ("DescribeStream", {"StreamArn": "not-an-arn"}, "ValidationException"),
        ("DescribeStream", {}, "ValidationException"),
        ("NoSuchOperation", {}, "ValidationException"),
    ]
    for operation, body, code in cases:
        status, answer = raw_streams_call(stack, operation, body)
        assert status == 400
        assert answer["__type"] == f"com.amazonaws.dynamodb.v20120810#{code}"
        assert answer["message"]


# --- 8. ListStreams ----------------------------------------------------------------------


def test_list_streams_filter_and_paging(
    streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    made = [make_table() for _ in range(3)]
    only = streams.list_streams(TableName=made[1][0])["Streams"]
    assert [(s["TableName"], s["StreamArn"]) for s in only] == [made[1]]
    seen: list[str] = []
    kwargs: dict[str, Any] = {"Limit": 2}
    while True:
        answer = streams.list_streams(**kwargs)
        assert len(answer["Streams"]) <= 2
        seen += [s["StreamArn"] for s in answer["Streams"]]
        if "LastEvaluatedStreamArn" not in answer:
            break
        kwargs["ExclusiveStartStreamArn"] = answer["LastEvaluatedStreamArn"]
    assert {arn for _, arn in made} <= set(seen)
    assert len(seen) == len(set(seen))


# --- 9. concurrency ----------------------------------------------------------------------


def test_concurrent_writers_keep_sequence_numbers_unique_and_per_key_order(
    stack: LocalStack, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    stack.split(table)

    def writer(worker: int) -> None:
        client = boto3.client("dynamodb", endpoint_url=stack.endpoint_url, **CREDENTIALS)
        for i in range(25):
            put(client, table, f"w{worker}", i)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    stack.rollover(table)  # races with the writers on purpose
    for thread in threads:
        thread.join()
    records = [r for s in stack.shards(table) for r in _read_any(streams, arn, s)]
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert len(records) == 100 and len(set(seqs)) == 100
    by_key: dict[str, list[tuple[int, int]]] = {}
    for record in records:
        key = record["dynamodb"]["Keys"]["pk"]["S"]
        value = int(record["dynamodb"]["NewImage"]["v"]["N"])
        by_key.setdefault(key, []).append((int(record["dynamodb"]["SequenceNumber"]), value))
    for versions in by_key.values():
        assert [value for _, value in sorted(versions)] == list(range(25))


def _read_any(streams: Any, arn: str, shard: dict[str, Any]) -> list[dict[str, Any]]:
    if "EndingSequenceNumber" in shard["SequenceNumberRange"]:
        return drain(streams, arn, shard["ShardId"])
    return read_open(streams, arn, shard["ShardId"])


# --- 10. speed ---------------------------------------------------------------------------


def test_a_1000_record_page_costs_milliseconds(
    stack: LocalStack, ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    for start in range(0, 1000, 25):
        items = [
            {"PutRequest": {"Item": {"pk": {"S": f"k{i}"}, "s": {"S": "x" * 80}}}}
            for i in range(start, start + 25)
        ]
        ddb.batch_write_item(RequestItems={table: items})
    it = iterator(streams, arn, stack.shards(table)[0]["ShardId"])
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        status, page = raw_streams_call(stack, "GetRecords", {"ShardIterator": it})
        timings.append(time.perf_counter() - began)
        assert status == 200 and len(page["Records"]) == 1000
    assert statistics.median(timings) < 0.1  # moto's own serializer needs ~400 ms


# --- 11. lineage across three generations -------------------------------------------------


def test_lineage_aware_reader_sees_every_key_in_order_across_generations(
    stack: LocalStack, ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    keys = [f"user-{i}" for i in range(6)]
    version = dict.fromkeys(keys, 0)

    def write_round() -> None:
        for key in keys:
            version[key] += 1
            put(ddb, table, key, version[key])

    write_round()
    stack.split(table)
    write_round()
    write_round()
    grandchildren = stack.rollover(table)  # each child gets one grandchild
    assert len(grandchildren) == 2 and stack.graph(table).open_shard_ids() == grandchildren
    write_round()
    ddb.delete_item(TableName=table, Key={"pk": {"S": keys[0]}})

    shards = all_shards(streams, arn, Limit=2)
    assert len(shards) == 5
    seen: dict[str, list[int]] = {key: [] for key in keys}
    removed: list[str] = []
    for shard in _parents_first(shards):
        for record in _read_any(streams, arn, shard):
            key = record["dynamodb"]["Keys"]["pk"]["S"]
            if record["eventName"] == "REMOVE":
                removed.append(key)
                continue
            new = int(record["dynamodb"]["NewImage"]["v"]["N"])
            if seen[key]:
                assert int(record["dynamodb"]["OldImage"]["v"]["N"]) == seen[key][-1]
            seen[key].append(new)
    assert seen == {key: [1, 2, 3, 4] for key in keys}
    assert removed == [keys[0]]


def _parents_first(shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order shards so that every parent comes before its children, whatever the listing."""
    done: set[str] = set()
    ordered: list[dict[str, Any]] = []
    pending = list(shards)
    while pending:
        ready = [s for s in pending if s.get("ParentShardId") in done | {None}]
        assert ready, "a shard's parent is missing from the listing"
        for shard in ready:
            ordered.append(shard)
            done.add(shard["ShardId"])
            pending.remove(shard)
    return ordered


# --- 12. timers, stream disable, serve() -----------------------------------------------


def test_background_rollover_and_split_timers_stop_with_the_stack(
    ddb: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, _ = make_table()
    timed = LocalStack(rollover_every=0.05, split_every=0.07).start()
    try:
        deadline = time.monotonic() + 5
        while len(timed.shards(table)) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(timed.shards(table)) >= 6
    finally:
        timed.stop()
    settled = len(timed.shards(table))
    time.sleep(0.2)
    assert len(timed.shards(table)) == settled
    assert not [t for t in threading.enumerate() if t.name.startswith("shardline-local-")]
    put(ddb, table, "still-writable", 1)


def test_disabling_a_stream_closes_its_shards_and_keeps_the_table_writable(
    stack: LocalStack, ddb: Any, streams: Any, make_table: Callable[..., tuple[str, str]]
) -> None:
    table, arn = make_table()
    put(ddb, table, "before", 1)
    ddb.update_table(TableName=table, StreamSpecification={"StreamEnabled": False})
    put(ddb, table, "after", 2)
    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert description["StreamStatus"] == "DISABLED"
    (shard,) = description["Shards"]
    assert "EndingSequenceNumber" in shard["SequenceNumberRange"]
    keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in drain(streams, arn, shard["ShardId"])]
    assert keys == ["before"]


def test_serve_prints_the_endpoint_and_stops_on_sigterm() -> None:
    code = (
        "from shardline.local import serve; "
        "serve('127.0.0.1', 0, rollover_every=None, split_every=None, region='us-east-1')"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            endpoint = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            assert endpoint, line
            client = boto3.client("dynamodbstreams", endpoint_url=endpoint.group(0), **CREDENTIALS)
            assert "Streams" in client.list_streams()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()


def test_patching_is_idempotent(stack: LocalStack) -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    from shardline.local import patch

    before = (Table.put_item, DynamoDBBackend.transact_write_items)
    patch.install()
    LocalStack().start().stop()
    assert (Table.put_item, DynamoDBBackend.transact_write_items) == before
    wrapped = getattr(Table.put_item, "__wrapped__", None)  # wrapped once, not twice
    assert wrapped is not None and not hasattr(wrapped, "__wrapped__")
