"""Every fault the local stack injects, observed over real HTTP (boto3, raw HTTP, core client)."""

from __future__ import annotations

import asyncio
import http.client
import itertools
import time
from collections.abc import Iterator
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.local import LocalStack

pytestmark = pytest.mark.integration

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=10)
CREDENTIALS = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
_names = itertools.count()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(seed=11) as running:
        yield running


@pytest.fixture(autouse=True)
def no_faults_left(stack: LocalStack) -> Iterator[None]:
    yield
    stack.faults.clear()
    stack.configure(retention=None, iterator_ttl=None, describe_page_size=100)


@pytest.fixture(scope="module")
def ddb(stack: LocalStack) -> Any:
    return boto3.client(
        "dynamodb", endpoint_url=stack.endpoint_url, config=NO_RETRIES, **CREDENTIALS
    )


@pytest.fixture(scope="module")
def streams(stack: LocalStack) -> Any:
    return boto3.client(
        "dynamodbstreams", endpoint_url=stack.endpoint_url, config=NO_RETRIES, **CREDENTIALS
    )


def make_table(ddb: Any) -> tuple[str, str]:
    name = f"faults-{next(_names)}"
    answer = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return name, answer["TableDescription"]["LatestStreamArn"]


def put(ddb: Any, table: str, key: str, version: int = 1) -> None:
    ddb.put_item(TableName=table, Item={"pk": {"S": key}, "version": {"N": str(version)}})


def first_shard(streams: Any, arn: str) -> str:
    return str(streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"])


def horizon(streams: Any, arn: str, shard: str) -> str:
    answer = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )
    return str(answer["ShardIterator"])


def error_code(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def raw_post(stack: LocalStack, target: str, body: dict[str, Any]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(stack.host, stack.port, timeout=10)
    connection.request(
        "POST", "/", orjson.dumps(body),
        {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"},
    )  # fmt: skip
    return connection.getresponse()


# --- throttling ---------------------------------------------------------------------------


def test_a_throttle_burst_then_service_resumes(stack: LocalStack, ddb: Any, streams: Any) -> None:
    table, arn = make_table(ddb)
    put(ddb, table, "a")
    shard = first_shard(streams, arn)
    iterator = horizon(streams, arn, shard)
    stack.faults.throttle("GetRecords", count=2)
    assert (
        error_code(lambda: streams.get_records(ShardIterator=iterator)) == "LimitExceededException"
    )
    assert (
        error_code(lambda: streams.get_records(ShardIterator=iterator)) == "LimitExceededException"
    )
    assert len(streams.get_records(ShardIterator=iterator)["Records"]) == 1


def test_throttling_at_a_rate_and_per_table(stack: LocalStack, ddb: Any, streams: Any) -> None:
    table, arn = make_table(ddb)
    _, other_arn = make_table(ddb)
    stack.faults.add(f"throttle:ops=DescribeStream,GetShardIterator:rate=0.5:table={table}")
    outcomes = []
    for _ in range(40):
        try:
            streams.describe_stream(StreamArn=arn)
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert {"ok", "LimitExceededException"} == set(outcomes)
    for _ in range(10):  # the other table is not throttled
        streams.get_shard_iterator(
            StreamArn=other_arn, ShardId=first_shard(streams, other_arn), ShardIteratorType="LATEST"
        )


def test_lease_table_writes_throttled(stack: LocalStack, ddb: Any) -> None:
    leases, _ = make_table(ddb)
    data, _ = make_table(ddb)
    stack.faults.throttle("writes", table=leases)
    code = error_code(lambda: put(ddb, leases, "lease-1"))
    assert code == "ProvisionedThroughputExceededException"
    put(ddb, data, "fine")  # other tables are not throttled
    ddb.get_item(TableName=leases, Key={"pk": {"S": "lease-1"}})  # reads are not either
    assert "Item" not in ddb.get_item(TableName=leases, Key={"pk": {"S": "lease-1"}})


# --- 500s and dropped connections -------------------------------------------------------------


def test_http_500(stack: LocalStack, ddb: Any, streams: Any) -> None:
    _, arn = make_table(ddb)
    stack.faults.server_error("DescribeStream", count=1)
    response = raw_post(stack, "DynamoDBStreams_20120810.DescribeStream", {"StreamArn": arn})
    assert response.status == 500
    assert orjson.loads(response.read())["__type"].endswith("#InternalServerError")
    assert streams.describe_stream(StreamArn=arn)["StreamDescription"]["StreamStatus"] == "ENABLED"


def test_a_500_after_the_write_was_applied(stack: LocalStack, ddb: Any) -> None:
    table, _ = make_table(ddb)
    stack.faults.server_error("PutItem", table=table, count=1, applied=True)
    with pytest.raises(ClientError):
        put(ddb, table, "applied")
    assert "Item" in ddb.get_item(TableName=table, Key={"pk": {"S": "applied"}})


def test_a_dropped_connection_gets_no_answer(stack: LocalStack, ddb: Any) -> None:
    table, _ = make_table(ddb)
    stack.faults.drop_connection("PutItem", table=table, count=1)
    body = {"TableName": table, "Item": {"pk": {"S": "dropped"}}}
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        raw_post(stack, "DynamoDB_20120810.PutItem", body)
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "dropped"}})
    assert stack.faults.fired["drop"] >= 1


def test_the_core_client_retries_through_500s_drops_and_throttles(
    stack: LocalStack, ddb: Any
) -> None:
    table, _ = make_table(ddb)
    put(ddb, table, "k")
    for kind in ("error", "drop", "throttle"):
        stack.faults.add(f"{kind}:ops=GetItem:table={table}:count=1")

    async def get() -> dict[str, Any]:
        settings = AwsSettings(region="us-east-1", endpoint_url=stack.endpoint_url)
        async with AwsJsonClient.create("dynamodb", settings) as client:
            return await client.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "k"}}})

    assert asyncio.run(get())["Item"]["pk"] == {"S": "k"}
    assert stack.faults.rules() == {}


# --- conditional-check races ----------------------------------------------------------------


def conditional_put(ddb: Any, table: str, key: str) -> None:
    ddb.put_item(
        TableName=table,
        Item={"pk": {"S": key}},
        ConditionExpression="attribute_not_exists(pk)",
    )


def test_a_race_fails_conditional_writes_only(stack: LocalStack, ddb: Any) -> None:
    table, _ = make_table(ddb)
    stack.faults.conditional_race(table=table)
    assert error_code(lambda: conditional_put(ddb, table, "c")) == "ConditionalCheckFailedException"
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "c"}})
    put(ddb, table, "unconditional")


def test_a_race_lost_after_the_write_was_applied(stack: LocalStack, ddb: Any) -> None:
    table, _ = make_table(ddb)
    stack.faults.conditional_race("PutItem", table=table, count=1, applied=True)
    assert error_code(lambda: conditional_put(ddb, table, "c")) == "ConditionalCheckFailedException"
    assert "Item" in ddb.get_item(TableName=table, Key={"pk": {"S": "c"}})


# --- reads: empty pages, tiny DescribeStream pages, iterator expiry, retention --------------


def test_empty_pages_before_data(stack: LocalStack, ddb: Any, streams: Any) -> None:
    table, arn = make_table(ddb)
    put(ddb, table, "a")
    iterator = horizon(streams, arn, first_shard(streams, arn))
    stack.faults.empty_pages(count=3, table=table)
    pages: list[list[Any]] = []
    while not pages or not pages[-1]:
        answer = streams.get_records(ShardIterator=iterator)
        pages.append(answer["Records"])
        iterator = answer["NextShardIterator"]
    assert [len(p) for p in pages] == [0, 0, 0, 1]


def test_tiny_describe_stream_pages(stack: LocalStack, ddb: Any, streams: Any) -> None:
    table, arn = make_table(ddb)
    for _ in range(3):
        stack.split(table)
    stack.configure(describe_page_size=1)
    seen, start = [], None
    while True:
        kwargs: dict[str, str] = {"ExclusiveStartShardId": start} if start else {}
        page = streams.describe_stream(StreamArn=arn, Limit=100, **kwargs)["StreamDescription"]
        assert len(page["Shards"]) == 1
        seen += [s["ShardId"] for s in page["Shards"]]
        start = page.get("LastEvaluatedShardId")
        if start is None:
            break
    assert seen == [s["ShardId"] for s in stack.shards(table)]


def test_iterators_expire_after_the_ttl(stack: LocalStack, ddb: Any, streams: Any) -> None:
    _, arn = make_table(ddb)
    iterator = horizon(streams, arn, first_shard(streams, arn))
    stack.configure(iterator_ttl=0.2)
    time.sleep(0.4)
    assert (
        error_code(lambda: streams.get_records(ShardIterator=iterator))
        == "ExpiredIteratorException"
    )


def test_retention_trims_records_and_removes_old_shards(
    stack: LocalStack, ddb: Any, streams: Any
) -> None:
    table, arn = make_table(ddb)
    parent = first_shard(streams, arn)
    put(ddb, table, "old")
    old_iterator = horizon(streams, arn, parent)
    (child,) = stack.rollover(table)
    stack.configure(retention=0.3)
    time.sleep(0.5)
    put(ddb, table, "new")
    code = error_code(lambda: streams.get_records(ShardIterator=old_iterator))
    assert code in ("TrimmedDataAccessException", "ResourceNotFoundException")
    listed = [
        s["ShardId"] for s in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    ]
    assert listed == [child]
    assert error_code(lambda: horizon(streams, arn, parent)) == "ResourceNotFoundException"
    records = streams.get_records(ShardIterator=horizon(streams, arn, child))["Records"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == ["new"]


def test_trimmed_records_of_an_open_shard(stack: LocalStack, ddb: Any, streams: Any) -> None:
    table, arn = make_table(ddb)
    shard = first_shard(streams, arn)
    put(ddb, table, "a")
    iterator = horizon(streams, arn, shard)
    first = streams.get_records(ShardIterator=iterator)["Records"][0]["dynamodb"]["SequenceNumber"]
    stack.configure(retention=0.2)
    time.sleep(0.4)
    assert (
        error_code(lambda: streams.get_records(ShardIterator=iterator))
        == "TrimmedDataAccessException"
    )
    code = error_code(
        lambda: streams.get_shard_iterator(
            StreamArn=arn,
            ShardId=shard,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=first,
        )
    )
    assert code == "TrimmedDataAccessException"


# --- shard graph: children first, parent still open, random changes ----------------------------


def test_parent_still_open_when_children_appear(stack: LocalStack, ddb: Any, streams: Any) -> None:
    table, arn = make_table(ddb)
    parent = first_shard(streams, arn)
    children = stack.split(table, parent_open_for=0.5)
    shards = {
        s["ShardId"]: s
        for s in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    }
    assert "EndingSequenceNumber" not in shards[parent]["SequenceNumberRange"]
    assert {shards[c]["ParentShardId"] for c in children} == {parent}
    put(ddb, table, "while-open")
    assert stack.graph(table).route(b'{"S":"while-open"}') == parent
    time.sleep(1.0)
    shards = {
        s["ShardId"]: s
        for s in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    }
    assert "EndingSequenceNumber" in shards[parent]["SequenceNumberRange"]
    records = streams.get_records(ShardIterator=horizon(streams, arn, parent))
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records["Records"]] == ["while-open"]


def test_children_listed_before_parents(stack: LocalStack, ddb: Any, streams: Any) -> None:
    table, arn = make_table(ddb)
    stack.rollover(table)
    stack.configure(children_first=True)
    try:
        listed = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        assert "ParentShardId" in listed[0] and "ParentShardId" not in listed[1]
    finally:
        stack.configure(children_first=False)


def test_random_rollovers_and_splits_keep_the_key_space_partitioned(ddb: Any) -> None:
    with LocalStack(reshard_every=0.05, max_open_shards=4, seed=5) as busy:
        table, _ = make_table(ddb)
        time.sleep(1.5)
    shards = busy.shards(table)
    open_shards = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    assert len(shards) > 5 and 1 <= len(open_shards) <= 4
    graph = busy.graph(table)
    assert {graph.route(f"k{i}".encode()) for i in range(200)} <= {
        s["ShardId"] for s in open_shards
    }


# --- stream disable and re-enable, TTL deletes --------------------------------------------------


def test_re_enabling_a_stream_gives_a_new_arn_and_keeps_the_old_readable(
    stack: LocalStack, ddb: Any, streams: Any
) -> None:
    table, old_arn = make_table(ddb)
    put(ddb, table, "before")
    ddb.update_table(TableName=table, StreamSpecification={"StreamEnabled": False})
    put(ddb, table, "while-disabled")
    ddb.update_table(
        TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    )
    new_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    assert new_arn != old_arn
    put(ddb, table, "after")
    old = streams.describe_stream(StreamArn=old_arn)["StreamDescription"]
    new = streams.describe_stream(StreamArn=new_arn)["StreamDescription"]
    assert (old["StreamStatus"], new["StreamStatus"]) == ("DISABLED", "ENABLED")
    assert old["StreamLabel"] == old_arn.rsplit("/", 1)[1] and new["StreamViewType"] == "NEW_IMAGE"

    def keys(arn: str) -> list[str]:
        records = streams.get_records(
            ShardIterator=horizon(streams, arn, first_shard(streams, arn))
        )
        return [r["dynamodb"]["Keys"]["pk"]["S"] for r in records["Records"]]

    assert (keys(old_arn), keys(new_arn)) == (["before"], ["after"])
    listed = [s["StreamArn"] for s in streams.list_streams(TableName=table)["Streams"]]
    assert listed == [old_arn, new_arn]
    stack.disable_stream(table)
    assert stack.enable_stream(table) not in (old_arn, new_arn)


def test_ttl_delete_is_a_remove_by_the_service(stack: LocalStack, ddb: Any, streams: Any) -> None:
    table, arn = make_table(ddb)
    put(ddb, table, "expiring", 3)
    ddb.delete_item(TableName=table, Key={"pk": {"S": "user-deleted"}})
    put(ddb, table, "user-deleted")
    ddb.delete_item(TableName=table, Key={"pk": {"S": "user-deleted"}})
    assert stack.expire(table, {"pk": "expiring"}) is True
    assert stack.expire(table, {"pk": {"S": "absent"}}) is False
    records = streams.get_records(ShardIterator=horizon(streams, arn, first_shard(streams, arn)))
    removes = [r for r in records["Records"] if r["eventName"] == "REMOVE"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in removes] == ["user-deleted", "expiring"]
    assert "userIdentity" not in removes[0] or not removes[0]["userIdentity"]
    assert removes[1]["userIdentity"] == {
        "PrincipalId": "dynamodb.amazonaws.com",
        "Type": "Service",
    }
    assert removes[1]["dynamodb"]["OldImage"]["version"] == {"N": "3"}
