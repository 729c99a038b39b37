"""Delivery controls end to end: local stack streams, moto's SQS/SNS/S3 over real HTTP.

The local stack's moto app answers every service moto has (it routes by the signed
service name), so the failure destinations are reached over HTTP on the same port.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from shardline.aws.settings import AwsSettings
from shardline.config import ConsumerConfig
from shardline.delivery import DeliveryConfig, wrap_processor
from shardline.local.settings import LOCAL
from shardline.metrics import Metrics
from shardline.records import StreamRecord
from shardline.worker import Worker
from tests.integration.support import create_stream_table, dynamodb, unique

pytestmark = pytest.mark.integration
ACCOUNT = LOCAL.account_id


def client(stack: Any, service: str) -> Any:
    return boto3.client(service, endpoint_url=stack.endpoint_url, region_name="us-east-1")


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Running:
    """A worker over one table with a wrapped handler, on this event loop."""

    def __init__(self, stack: Any, table: str, handler: Any, config: DeliveryConfig,
                 *, stream_arn: str, lambda_mode: bool = False) -> None:  # fmt: skip
        self.metrics = Metrics()
        aws = AwsSettings(endpoint_url=stack.endpoint_url, region="us-east-1")
        factory = wrap_processor(
            handler, config, lambda_mode, stream_arn=stream_arn, metrics=self.metrics, aws=aws,
            retry_base_delay=0.05, retry_max_delay=0.2,
        )  # fmt: skip
        self.application = unique("app")
        self.worker = Worker(
            ConsumerConfig(
                application=self.application,
                table=table,
                aws=aws,
                failover_time=3.0,
                idle_time=0.05,
                call_process_records_even_for_empty_list=True,
            ),
            factory,
            self.metrics,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.worker.run(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)

    def count(self, name: str) -> float:
        return float(self.metrics.registry.get_sample_value(name) or 0)


def put(stack: Any, table: str, *keys: str) -> None:
    ddb = dynamodb(stack.endpoint_url)
    for key in keys:
        ddb.put_item(TableName=table, Item={"pk": {"S": key}, "payload": {"S": f"data-{key}"}})


def poison_handler(seen: list[str]) -> Callable[[list[StreamRecord]], None]:
    def handle(records: list[StreamRecord]) -> None:
        for r in records:
            if r.keys["pk"] == "poison":
                raise ValueError("cannot handle poison")
        seen.extend(r.keys["pk"] for r in records)

    return handle


# --- destinations -------------------------------------------------------------------------------


def make_sqs(stack: Any) -> tuple[str, Callable[[], list[dict[str, Any]]]]:
    sqs = client(stack, "sqs")
    name = unique("dlq")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    received: list[dict[str, Any]] = []

    def read() -> list[dict[str, Any]]:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            received.append(json.loads(m["Body"]))
        return received

    return f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}", read


def make_sns(stack: Any) -> tuple[str, Callable[[], list[dict[str, Any]]]]:
    sns, sqs = client(stack, "sns"), client(stack, "sqs")
    topic = sns.create_topic(Name=unique("failures"))["TopicArn"]
    queue_arn, read = make_sqs(stack)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn,
                  Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    del sqs
    return topic, read


def make_s3(stack: Any) -> tuple[str, Callable[[], list[dict[str, Any]]]]:
    s3 = client(stack, "s3")
    bucket = unique("failures")
    s3.create_bucket(Bucket=bucket)

    def read() -> list[dict[str, Any]]:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert all(k.startswith("dlq/shardId-") for k in keys)
        return [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]

    return f"s3://{bucket}/dlq/", read


def make_file(tmp_path: Any) -> tuple[str, Callable[[], list[dict[str, Any]]]]:
    directory = tmp_path / "dlq"

    def read() -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in directory.rglob("*.json")]

    return f"file://{directory}", read


@pytest.mark.parametrize("kind", ["sqs", "sns", "s3", "file"])
async def test_poison_record_reaches_the_destination_with_full_content(
    local_stack: Any, tmp_path: Any, kind: str
) -> None:
    makers = {"sqs": make_sqs, "sns": make_sns, "s3": make_s3}
    uri, read = make_file(tmp_path) if kind == "file" else makers[kind](local_stack)
    table = unique("dlq")
    arn = create_stream_table(local_stack.endpoint_url, table)
    put(local_stack, table, "a", "b", "poison", "c", "d")
    seen: list[str] = []
    config = DeliveryConfig(
        batch_size=10, bisect_batch_on_function_error=True, maximum_retry_attempts=1,
        on_failure=uri,
    )  # fmt: skip
    async with Running(local_stack, table, poison_handler(seen), config, stream_arn=arn) as run:
        await wait_for(lambda: bool(read()), 30, f"a document in {kind}")
        await wait_for(lambda: sorted(seen) == ["a", "b", "c", "d"], 30, "the other records")
    (document,) = read()
    (rec,) = document["records"]
    assert rec["dynamodb"]["NewImage"] == {"pk": {"S": "poison"}, "payload": {"S": "data-poison"}}
    assert rec["eventSourceARN"] == arn and rec["eventName"] == "INSERT"
    info = document["DDBStreamBatchInfo"]
    assert info["streamArn"] == arn and info["shardId"].startswith("shardId-")
    assert (
        info["startSequenceNumber"]
        == info["endSequenceNumber"]
        == rec["dynamodb"]["SequenceNumber"]
    )
    assert document["error"] == {"type": "ValueError", "message": "cannot handle poison"}
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert document["requestContext"]["approximateInvokeCount"] >= 2
    assert run.count("shardline_records_dropped_total") == 1
    assert run.count("shardline_failure_destination_deliveries_total") == 1


async def test_filters_batches_and_checkpoint_past_filtered_records(local_stack: Any) -> None:
    table = unique("flt")
    arn = create_stream_table(local_stack.endpoint_url, table)
    put(local_stack, table, *[f"keep-{i}" for i in range(5)], *[f"skip-{i}" for i in range(5)])
    batches: list[list[str]] = []
    config = DeliveryConfig(
        batch_size=2,
        filter_criteria={"Filters": [{"Pattern": json.dumps(
            {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "keep-"}]}}}})}]},
    )  # fmt: skip
    handler = lambda rs: batches.append([r.keys["pk"] for r in rs])  # noqa: E731
    async with Running(local_stack, table, handler, config, stream_arn=arn) as run:
        await wait_for(lambda: sum(map(len, batches)) == 5, 30, "the kept records")
        await wait_for(
            lambda: run.count("shardline_records_filtered_out_total") == 5, 10, "filter counts"
        )
        await wait_for(lambda: _checkpoints(local_stack, run) == {_last_sequence(local_stack, arn)},
                       20, "the checkpoint past the filtered tail")  # fmt: skip
    assert all(len(b) <= 2 for b in batches)
    assert sorted(k for b in batches for k in b) == [f"keep-{i}" for i in range(5)]


def _checkpoints(stack: Any, run: Running) -> set[str]:
    items = dynamodb(stack.endpoint_url).scan(TableName=run.application)["Items"]
    return {i["checkpoint"]["S"] for i in items}


def _last_sequence(stack: Any, arn: str) -> str:
    streams = boto3.client("dynamodbstreams", endpoint_url=stack.endpoint_url,
                           region_name="us-east-1")  # fmt: skip
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    last = "0"
    for shard in shards:
        it = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = streams.get_records(ShardIterator=it)["Records"]
        if records:
            last = max(last, records[-1]["dynamodb"]["SequenceNumber"], key=int)
    return last


async def test_partial_failures_with_parallelization_keep_key_order(local_stack: Any) -> None:
    table = unique("par")
    arn = create_stream_table(local_stack.endpoint_url, table)
    ddb = dynamodb(local_stack.endpoint_url)
    for version in range(1, 4):
        for k in range(6):
            ddb.put_item(TableName=table, Item={"pk": {"S": f"k{k}"}, "v": {"N": str(version)}})
    processed: list[tuple[str, int]] = []
    failed: set[str] = set()

    async def handle(records: list[StreamRecord]) -> dict[str, Any]:
        for r in records:
            key, version = r.keys["pk"], int(r.new_image["v"])  # type: ignore[index]
            if version == 2 and key not in failed:
                failed.add(key)
                return {"batchItemFailures": [{"itemIdentifier": r.sequence_number}]}
            processed.append((key, version))
        return {"batchItemFailures": []}

    config = DeliveryConfig(parallelization_factor=3, report_batch_item_failures=True,
                            batch_size=4)  # fmt: skip
    async with Running(local_stack, table, handle, config, stream_arn=arn):
        await wait_for(lambda: {(k, v) for k, v in processed} >= {(f"k{k}", v) for k in range(6)
                                                                   for v in (1, 2, 3)},
                       30, "every version")  # fmt: skip
    for k in range(6):
        versions = [v for key, v in processed if key == f"k{k}"]
        assert versions == sorted(versions), versions


# --- Lambda handlers unchanged ------------------------------------------------------------------


async def test_unmodified_powertools_handler_with_partial_failures(local_stack: Any) -> None:
    from tests.integration import test_lambda_app as app

    table = unique("pt")
    arn = create_stream_table(local_stack.endpoint_url, table)
    put(local_stack, table, "a", "b", "flaky", "c")
    ddb = dynamodb(local_stack.endpoint_url)
    ddb.delete_item(TableName=table, Key={"pk": {"S": "a"}})
    app.reset(fail_once={"flaky"})
    config = DeliveryConfig(report_batch_item_failures=True,
                            filter_criteria={"eventName": ["INSERT"]})  # fmt: skip
    async with Running(local_stack, table, app.lambda_handler, config, stream_arn=arn,
                       lambda_mode=True) as run:  # fmt: skip
        await wait_for(lambda: set(app.HANDLED) >= {"a", "b", "flaky", "c"}, 30, "all inserts")
        assert run.count("shardline_records_filtered_out_total") == 1  # the REMOVE
    assert app.HANDLED.index("flaky") > app.HANDLED.index("b")
    assert app.FAILED == ["flaky"]
    assert all(arn == source for source in app.SOURCES)
    assert os.environ.get("AWS_LAMBDA_FUNCTION_NAME") is None
