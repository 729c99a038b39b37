"""StreamsClient against plain moto over real HTTP, compared with boto3's view of the same data.

Plain moto's ``ThreadedMotoServer`` (no shardline.local extension): one shard per table, never
closed. Rules from reference/local-emulation.md: no disable/re-enable, no assertions on
``awsRegion``, ``SizeBytes`` or timestamp precision.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import orjson
import pytest

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.errors import ConfigError, ResourceNotFoundError
from shardline.streams.client import StreamsClient, resolve_stream_arn
from shardline.streams.wire import WireRecord, encode_record

pytestmark = pytest.mark.integration

REGION = "us-east-1"
TABLE = "orders"
ITEMS: list[dict[str, dict[str, Any]]] = [
    {"pk": {"S": f"order-{i}"}, "n": {"N": str(i)}, "blob": {"B": bytes([i, 255 - i])}}
    for i in range(6)
]


# A ThreadedMotoServer in a child process: shardline.local patches moto's classes in this
# process for good, and this test is about *plain* moto.
_SERVE = (
    "import sys, threading\n"
    "from moto.server import ThreadedMotoServer\n"
    "server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
    "server.start()\n"
    "print(server.get_host_and_port()[1], flush=True)\n"
    "sys.stdin.read()\n"
    "server.stop()\n"
)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with subprocess.Popen(
        [sys.executable, "-c", _SERVE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:  # closes the pipes and waits
        assert process.stdin is not None and process.stdout is not None
        try:
            port = int(process.stdout.readline())
            yield f"http://127.0.0.1:{port}"
        finally:
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def boto(moto_url: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture(scope="module")
def stream_arn(boto: Any, moto_url: str) -> str:
    ddb = boto.client("dynamodb", endpoint_url=moto_url)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.create_table(
        TableName="no-stream",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for item in ITEMS:
        ddb.put_item(TableName=TABLE, Item=item)
    arn: str = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    return arn


@pytest.fixture
def boto_streams(boto: Any, moto_url: str) -> Any:
    return boto.client("dynamodbstreams", endpoint_url=moto_url)


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> AwsSettings:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return AwsSettings(region=REGION, endpoint_url=moto_url, max_attempts=2)


@pytest.fixture
async def streams(aws: AwsSettings) -> AsyncIterator[StreamsClient]:
    async with AwsJsonClient.create("dynamodbstreams", aws) as client:
        yield StreamsClient(client)


def dicts(records: list[WireRecord]) -> list[dict[str, Any]]:
    """Wire records back in the service's JSON form."""
    return [orjson.loads(encode_record(record)) for record in records]


def like_boto3(record: dict[str, Any]) -> dict[str, Any]:
    """Our raw wire record as boto3 decodes it: binary values as bytes, times as datetimes."""

    def attr(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: base64.b64decode(v) if k == "B" else attr(v) for k, v in value.items()}
        if isinstance(value, list):
            return [attr(v) for v in value]
        return value

    out: dict[str, Any] = attr(record)
    data = out["dynamodb"]
    if "ApproximateCreationDateTime" in data:
        data["ApproximateCreationDateTime"] = datetime.fromtimestamp(
            data["ApproximateCreationDateTime"], tz=UTC
        )
    return out


def _normalise_time(record: dict[str, Any]) -> dict[str, Any]:
    data = record["dynamodb"]
    stamp = data.get("ApproximateCreationDateTime")
    if isinstance(stamp, datetime):
        data["ApproximateCreationDateTime"] = round(stamp.timestamp(), 3)
    return record


async def _only_shard(streams: StreamsClient, arn: str) -> str:
    description = await streams.describe_stream(arn)
    assert len(description.shards) == 1
    return description.shards[0].shard_id


async def test_list_streams_matches_boto3(
    streams: StreamsClient, boto_streams: Any, stream_arn: str
) -> None:
    ours = await streams.list_streams()
    assert ours == boto_streams.list_streams()["Streams"]
    assert [s["StreamArn"] for s in await streams.list_streams(TABLE)] == [stream_arn]


async def test_describe_stream_matches_boto3(
    streams: StreamsClient, boto_streams: Any, stream_arn: str
) -> None:
    ours = await streams.describe_stream(stream_arn)
    theirs = boto_streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
    assert ours.stream_arn == stream_arn
    assert ours.stream_status == theirs["StreamStatus"] == "ENABLED"
    assert ours.stream_view_type == "NEW_AND_OLD_IMAGES"
    assert ours.table_name == TABLE
    assert [s.shard_id for s in ours.shards] == [s["ShardId"] for s in theirs["Shards"]]
    assert ours.shards[0].is_open
    assert (
        ours.shards[0].starting_sequence_number
        == (theirs["Shards"][0]["SequenceNumberRange"]["StartingSequenceNumber"])
    )


async def test_trim_horizon_records_match_boto3(
    streams: StreamsClient, boto_streams: Any, stream_arn: str
) -> None:
    shard_id = await _only_shard(streams, stream_arn)
    iterator = await streams.get_shard_iterator(stream_arn, shard_id, "TRIM_HORIZON")
    ours = await streams.get_records(iterator)
    their_iterator = boto_streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    theirs = boto_streams.get_records(ShardIterator=their_iterator)["Records"]
    assert len(ours.records) >= len(ITEMS)
    assert [_normalise_time(like_boto3(r)) for r in dicts(ours.records)] == [
        _normalise_time(r) for r in theirs
    ]
    assert dicts(ours.records)[0]["dynamodb"]["NewImage"] == {
        "pk": {"S": "order-0"},
        "n": {"N": "0"},
        "blob": {"B": base64.b64encode(bytes([0, 255])).decode()},
    }
    assert ours.next_iterator


async def test_pages_of_two_cover_the_shard(streams: StreamsClient, stream_arn: str) -> None:
    shard_id = await _only_shard(streams, stream_arn)
    iterator: str | None = await streams.get_shard_iterator(stream_arn, shard_id, "TRIM_HORIZON")
    keys: list[str] = []
    while iterator:
        page = await streams.get_records(iterator, limit=2)
        assert len(page.records) <= 2
        if not page.records:
            break
        keys.extend(r["dynamodb"]["Keys"]["pk"]["S"] for r in dicts(page.records))
        iterator = page.next_iterator
    assert keys[: len(ITEMS)] == [item["pk"]["S"] for item in ITEMS]


async def test_at_and_after_sequence_number(streams: StreamsClient, stream_arn: str) -> None:
    shard_id = await _only_shard(streams, stream_arn)
    start = await streams.get_shard_iterator(stream_arn, shard_id, "TRIM_HORIZON")
    records = dicts((await streams.get_records(start)).records)
    third = records[2]["dynamodb"]["SequenceNumber"]

    at = await streams.get_shard_iterator(stream_arn, shard_id, "AT_SEQUENCE_NUMBER", third)
    after = await streams.get_shard_iterator(stream_arn, shard_id, "AFTER_SEQUENCE_NUMBER", third)
    assert dicts((await streams.get_records(at, limit=1)).records) == records[2:3]
    assert dicts((await streams.get_records(after, limit=1)).records) == records[3:4]


async def test_latest_sees_only_new_writes(
    streams: StreamsClient, boto: Any, moto_url: str, stream_arn: str
) -> None:
    shard_id = await _only_shard(streams, stream_arn)
    latest = await streams.get_shard_iterator(stream_arn, shard_id, "LATEST")
    empty = await streams.get_records(latest)
    assert empty.records == []
    assert empty.next_iterator
    boto.client("dynamodb", endpoint_url=moto_url).put_item(
        TableName=TABLE, Item={"pk": {"S": "late"}, "n": {"N": "99"}}
    )
    page = await streams.get_records(empty.next_iterator)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in dicts(page.records)] == ["late"]
    assert page.records[0].eventName == "INSERT"


async def test_resolve_stream_arn(aws: AwsSettings, stream_arn: str) -> None:
    async with AwsJsonClient.create("dynamodb", aws) as dynamodb:
        assert await resolve_stream_arn(dynamodb, TABLE) == stream_arn
        with pytest.raises(ConfigError, match="has no stream enabled"):
            await resolve_stream_arn(dynamodb, "no-stream")
        with pytest.raises(ConfigError, match="was not found"):
            await resolve_stream_arn(dynamodb, "missing-table")


async def test_unknown_stream_is_resource_not_found(
    streams: StreamsClient, stream_arn: str
) -> None:
    gone = stream_arn.replace(f"table/{TABLE}/", "table/ghost/")
    with pytest.raises(ResourceNotFoundError) as caught:
        await streams.describe_stream(gone)
    assert caught.value.operation == "DescribeStream"
