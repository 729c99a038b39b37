"""Read pipeline benchmark: drain a stream over real HTTP from the embedded local stack.

The local stack (moto's DynamoDB plus shardline's shard graph) serves on 127.0.0.1 from
a thread of this same process, so its cost -- HTTP handling and building each page --
is inside every figure, for both readers alike. The two readers make the same calls in
the same order: per shard (parents first) GetShardIterator(TRIM_HORIZON), then
GetRecords(Limit=1000) until the shard ends or a page comes back empty.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from dataclasses import dataclass
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from pages import make_item, to_boto3

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.local import LocalStack
from shardline.records import StreamRecord
from shardline.streams.client import StreamsClient

__all__ = ["Drain", "PipelineResult", "run_pipeline"]

REGION = "us-east-1"
TABLE = "bench-reads"
_DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class Drain:
    """One full read of the stream."""

    seconds: float
    records: int
    pages: int


@dataclass(frozen=True)
class PipelineResult:
    """Every timed drain of both readers, and how the stream was set up."""

    boto3: list[Drain]
    shardline: list[Drain]
    items: int
    shards: int
    write_seconds: float


def run_pipeline(items: int, runs: int, seed: int, *, split: bool = True) -> PipelineResult:
    """Write ``items`` items, then drain the stream ``runs`` times with each reader.

    With ``split`` the table's shard is split halfway through the writes, so the drain
    crosses a closed parent and two children. One untimed warm-up drain per reader
    comes first; the timed drains alternate between the readers.
    """
    with LocalStack(region=REGION) as stack:
        dynamodb = boto3.client(
            "dynamodb", endpoint_url=stack.endpoint_url, region_name=REGION, **_DUMMY_CREDENTIALS
        )
        streams = boto3.client(
            "dynamodbstreams",
            endpoint_url=stack.endpoint_url,
            region_name=REGION,
            **_DUMMY_CREDENTIALS,
        )
        stream_arn = _create_table(dynamodb)
        started = time.perf_counter()
        _write_items(dynamodb, items, seed, split_at=items // 2 if split else None, stack=stack)
        write_seconds = time.perf_counter() - started
        shard_ids = _shard_ids(streams, stream_arn)

        aws = AwsJsonClient.create(
            "dynamodbstreams", AwsSettings(region=REGION, endpoint_url=stack.endpoint_url)
        )
        client = StreamsClient(aws)
        boto3_drains: list[Drain] = []
        shardline_drains: list[Drain] = []
        with asyncio.Runner() as runner:
            try:
                for index in range(runs + 1):
                    gc.collect()
                    drain = _drain_boto3(streams, stream_arn, shard_ids)
                    gc.collect()
                    fast = runner.run(_drain_shardline(client, stream_arn, shard_ids))
                    for drains, result in ((boto3_drains, drain), (shardline_drains, fast)):
                        if result.records != items:
                            raise RuntimeError(f"drained {result.records} records, wrote {items}")
                        if index > 0:  # the first drain of each reader is the warm-up
                            drains.append(result)
            finally:
                runner.run(aws.close())
        dynamodb.close()
        streams.close()
    return PipelineResult(boto3_drains, shardline_drains, items, len(shard_ids), write_seconds)


def _create_table(dynamodb: Any) -> str:
    answer = dynamodb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(answer["TableDescription"]["LatestStreamArn"])


def _write_items(
    dynamodb: Any, items: int, seed: int, *, split_at: int | None, stack: LocalStack
) -> None:
    """BatchWriteItem ``items`` new items, 25 a call; split the shard at ``split_at``."""
    rng = random.Random(seed)
    batch: list[dict[str, Any]] = []
    for index in range(items):
        if index == split_at:
            _flush(dynamodb, batch)
            stack.split(TABLE)
        batch.append({"PutRequest": {"Item": to_boto3(make_item(rng, index))}})
        if len(batch) == 25:
            _flush(dynamodb, batch)
    _flush(dynamodb, batch)


def _flush(dynamodb: Any, batch: list[dict[str, Any]]) -> None:
    pending: dict[str, Any] = {TABLE: list(batch)}
    batch.clear()
    while pending and pending.get(TABLE):
        pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def _shard_ids(streams: Any, stream_arn: str) -> list[str]:
    """Every shard id, parents before children (the order DescribeStream lists them)."""
    shard_ids: list[str] = []
    params: dict[str, Any] = {"StreamArn": stream_arn}
    while True:
        description = streams.describe_stream(**params)["StreamDescription"]
        shard_ids.extend(shard["ShardId"] for shard in description["Shards"])
        last = description.get("LastEvaluatedShardId")
        if not last:
            return shard_ids
        params["ExclusiveStartShardId"] = last


def _drain_boto3(streams: Any, stream_arn: str, shard_ids: list[str]) -> Drain:
    """boto3: get_records + TypeDeserializer on every NewImage."""
    deserialize = TypeDeserializer().deserialize
    records = pages = 0
    start = time.perf_counter()
    for shard_id in shard_ids:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            pages += 1
            for record in answer["Records"]:
                image = record["dynamodb"].get("NewImage")
                if image is not None:
                    {name: deserialize(av) for name, av in image.items()}
                records += 1
            if not answer["Records"]:
                break
            iterator = answer.get("NextShardIterator")
    return Drain(time.perf_counter() - start, records, pages)


async def _drain_shardline(client: StreamsClient, stream_arn: str, shard_ids: list[str]) -> Drain:
    """shardline: StreamsClient.get_records + StreamRecord.new_image on every record."""
    records = pages = 0
    start = time.perf_counter()
    for shard_id in shard_ids:
        iterator: str | None = await client.get_shard_iterator(stream_arn, shard_id, "TRIM_HORIZON")
        while iterator:
            page = await client.get_records(iterator, 1000)
            pages += 1
            for raw in page.records:
                StreamRecord(raw, shard_id).new_image  # noqa: B018 - decoding is the work
                records += 1
            if not page.records:
                break
            iterator = page.next_iterator
    return Drain(time.perf_counter() - start, records, pages)
