"""SQS, SNS (subscribed to an SQS queue) and EventBridge (a rule to an SQS queue) sinks on the
local stack over HTTP; messages read back and checked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from shardline.aws.settings import AwsSettings
from shardline.sinks.aws_messaging import EntryOutcome, group_id
from shardline.sinks.base import KeyAttribute, SinkContext, SinkError
from shardline.sinks.registry import sink_from_url
from shardline.sinks.sqs import SqsSink
from tests.integration.support import unique
from tests.sinks.notify_support import ARN, change

pytestmark = pytest.mark.integration


@pytest.fixture
def aws(local_stack: Any) -> Iterator[tuple[SinkContext, Any]]:
    settings = AwsSettings(region="us-east-1", endpoint_url=local_stack.endpoint_url)
    context = SinkContext("Orders", ARN, (KeyAttribute("pk", "S"),), "app", aws=settings)
    session = boto3.session.Session(region_name="us-east-1")
    yield context, lambda service: session.client(service, endpoint_url=local_stack.endpoint_url)


def interleaved(keys: int, per_key: int) -> list[Any]:
    out, sequence = [], 0
    for _ in range(per_key):
        for k in range(keys):
            sequence += 1
            out.append(change(f"k{k}", sequence, new={"v": {"N": str(sequence)}}))
    return out


def drain(sqs: Any, url: str, count: int) -> list[dict[str, Any]]:
    """Receive until ``count`` messages came (or 50 empty polls)."""
    got: list[dict[str, Any]] = []
    empty = 0
    while len(got) < count and empty < 50:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
            AttributeNames=["All"], WaitTimeSeconds=0,
        )  # fmt: skip
        messages = answer.get("Messages") or []
        empty = 0 if messages else empty + 1
        for message in messages:
            got.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return got


def queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, arn["QueueArn"]


async def test_sqs_standard_read_back(aws: tuple[SinkContext, Any]) -> None:
    context, client = aws
    sqs = client("sqs")
    name = unique("q")
    url, _ = queue(sqs, name)
    sink = sink_from_url(f"sqs://{name}?format=cloudevents")
    await sink.start(context)
    records = interleaved(5, 5)
    await sink.open_shard("s").write(records)
    await sink.close()
    got = drain(sqs, url, len(records))
    events = [json.loads(m["Body"]) for m in got]
    assert sorted(e["id"] for e in events) == sorted(r.event_id for r in records)
    assert all(e["specversion"] == "1.0" and e["source"] == ARN for e in events)
    attributes = got[0]["MessageAttributes"]
    assert attributes["event_name"]["StringValue"] == "MODIFY"
    assert attributes["table"]["StringValue"] == "Orders"


async def test_sqs_fifo_order_per_key_and_dedup(aws: tuple[SinkContext, Any]) -> None:
    context, client = aws
    sqs = client("sqs")
    name = unique("q") + ".fifo"
    url, _ = queue(sqs, name, FifoQueue="true")
    sink = sink_from_url(f"sqs://{url}")
    await sink.start(context)
    records = interleaved(4, 6)
    shard = sink.open_shard("s")
    await shard.write(records)
    await shard.write(records)  # a replay inside the deduplication window adds nothing
    await sink.close()
    got = drain(sqs, url, len(records) * 2)
    assert len(got) == len(records)
    by_key: dict[str, list[int]] = {}
    for message in got:
        body = json.loads(message["Body"])
        assert message["Attributes"]["MessageGroupId"] == body["key"]["pk"]
        assert message["Attributes"]["MessageDeduplicationId"] == body["id"]
        by_key.setdefault(body["key"]["pk"], []).append(int(body["sequence_number"]))
    assert all(seqs == sorted(seqs) and len(seqs) == 6 for seqs in by_key.values())


async def test_too_large_is_refused_through_the_failure_path(
    aws: tuple[SinkContext, Any],
) -> None:
    context, client = aws
    sqs = client("sqs")
    name = unique("q")
    url, _ = queue(sqs, name)
    sink = sink_from_url(f"sqs://{name}")
    await sink.start(context)
    big = change("big", 1, new={"blob": {"S": "x" * 300_000}})
    small = change("small", 2, new={"v": {"N": "1"}})
    with pytest.raises(SinkError) as refused:
        await sink.open_shard("s").write([big, small])
    await sink.close()
    assert not refused.value.retriable and "over the limit of 262144" in str(refused.value)
    assert [json.loads(m["Body"])["id"] for m in drain(sqs, url, 1)] == [small.event_id]


async def test_large_payloads_stored_in_s3_with_a_pointer(aws: tuple[SinkContext, Any]) -> None:
    context, client = aws
    sqs, s3 = client("sqs"), client("s3")
    name, bucket = unique("q"), unique("payloads")
    url, _ = queue(sqs, name)
    s3.create_bucket(Bucket=bucket)
    sink = sink_from_url(f"sqs://{name}?large_payloads=s3://{bucket}/big")
    await sink.start(context)
    big = change("big", 1, new={"blob": {"S": "x" * 300_000}})
    await sink.open_shard("s").write([big])
    await sink.close()
    (message,) = drain(sqs, url, 1)
    kind, pointer = json.loads(message["Body"])
    assert kind == "software.amazon.payloadoffloading.PayloadS3Pointer"
    assert pointer["s3BucketName"] == bucket
    assert pointer["s3Key"] == f"big/shardId-000/{big.event_id}.json"
    stored = s3.get_object(Bucket=bucket, Key=pointer["s3Key"])["Body"].read()
    assert json.loads(stored)["id"] == big.event_id and len(stored) > 300_000
    size = message["MessageAttributes"]["ExtendedPayloadSize"]
    assert size["DataType"] == "Number" and int(size["StringValue"]) == len(stored)
    statements = sink.iam_statements("us-east-1", "1")
    assert statements[-1]["Resource"] == f"arn:aws:s3:::{bucket}/big/*"


async def test_sns_to_a_subscribed_queue(aws: tuple[SinkContext, Any]) -> None:
    context, client = aws
    sqs, sns = client("sqs"), client("sns")
    url, arn = queue(sqs, unique("q"))
    topic = sns.create_topic(Name=unique("t"))["TopicArn"]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    sink = sink_from_url(f"sns://{topic}?format=debezium")
    await sink.start(context)
    records = [change("a", 1, "INSERT", new={}), change("a", 2, "REMOVE", old={})]
    await sink.open_shard("s").write(records)
    await sink.close()
    got = drain(sqs, url, 2)
    ops = sorted(json.loads(m["Body"])["op"] for m in got)
    assert ops == ["c", "d"]
    assert {m["MessageAttributes"]["event_name"]["StringValue"] for m in got} == {
        "INSERT",
        "REMOVE",
    }


async def test_eventbridge_rule_to_a_queue(aws: tuple[SinkContext, Any]) -> None:
    context, client = aws
    sqs, events = client("sqs"), client("events")
    url, arn = queue(sqs, unique("q"))
    bus = unique("bus")
    events.create_event_bus(Name=bus)
    events.put_rule(Name="r", EventBusName=bus, EventPattern=json.dumps({"source": ["orders"]}))
    events.put_targets(Rule="r", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    sink = sink_from_url(f"eventbridge://{bus}?source=orders")
    await sink.start(context)
    records = interleaved(3, 4)
    await sink.open_shard("s").write(records)
    await sink.close()
    got = [json.loads(m["Body"]) for m in drain(sqs, url, len(records))]
    assert sorted(e["detail"]["id"] for e in got) == sorted(r.event_id for r in records)
    assert {e["detail-type"] for e in got} == {"dynamodb.item.modified"}
    assert all(e["source"] == "orders" and e["resources"] == [ARN] for e in got)
    assert {e["time"] for e in got} == {"2026-01-01T00:00:00Z"}  # when the change was made


@pytest.mark.parametrize(
    "url",
    [
        "sqs://no-such-queue",
        "sns://arn:aws:sns:us-east-1:123456789012:no-such-topic",
        "eventbridge://no-such-bus",
    ],
)
async def test_missing_targets_are_one_line(aws: tuple[SinkContext, Any], url: str) -> None:
    context, _ = aws
    problems = await sink_from_url(url).check(context)
    assert len(problems) == 1 and url in problems[0] and "\n" not in problems[0]


class _Flaky(SqsSink):
    """Per-entry throttling, which the local stack cannot produce: entries of key ``a``
    fail once each with a retriable code, so only they are retried, in order."""

    sent: list[str]
    failed_once: set[str]

    def call(self, entries: list[dict[str, Any]]) -> dict[str, EntryOutcome]:
        outcomes = {}
        for entry in entries:
            body = json.loads(entry["MessageBody"])
            if body["key"]["pk"] == "a" and body["id"] not in self.failed_once:
                self.failed_once.add(body["id"])
                outcomes[entry["Id"]] = EntryOutcome("retry", "ThrottlingException: slow down")
            else:
                self.sent.append(body["id"])
        return outcomes

    def resolve(self) -> None:
        self.queue_url = "unused"


async def test_partial_failures_retry_only_those_entries_in_key_order(
    aws: tuple[SinkContext, Any],
) -> None:
    context, _ = aws
    sink = sink_from_url("sqs://flaky")
    assert isinstance(sink, SqsSink)
    flaky = _Flaky("flaky", sink.messages)
    flaky.sent, flaky.failed_once = [], set()
    flaky.base_delay = 0.001
    await flaky.start(context)
    records = [change(k, i, new={}) for i, k in enumerate("abab", 1)]
    await flaky.open_shard("s").write(records)
    assert flaky.sent.count("ev-b-2") == 1 and flaky.sent.count("ev-a-1") == 1
    assert flaky.sent.index("ev-a-1") < flaky.sent.index("ev-a-3")
    assert len(flaky.sent) == 4


def test_group_ids_and_iam() -> None:
    assert group_id("order-17") == "order-17"
    assert group_id("ключ").startswith("sha256:") and len(group_id("x" * 200)) <= 128
    sqs = sink_from_url("sqs://orders.fifo")
    (statement,) = sqs.iam_statements("eu-west-1", "123456789012")
    assert statement["Resource"] == "arn:aws:sqs:eu-west-1:123456789012:orders.fifo"
    assert "sqs:SendMessage" in statement["Action"]
    bus = sink_from_url("eventbridge://orders")
    assert bus.iam_statements("us-east-1", "1")[0]["Resource"] == (
        "arn:aws:events:us-east-1:1:event-bus/orders"
    )
    topic = "arn:aws:sns:us-east-1:1:t"
    assert sink_from_url(f"sns://{topic}").iam_statements("x", "1")[0]["Resource"] == topic
