"""Lambda's event and context, and an unmodified Powertools handler run by shardline."""

from __future__ import annotations

import asyncio
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBStreamEvent,
)

from shardline.delivery import DeliveryConfig
from shardline.delivery.invoke import lambda_invoker
from shardline.lambda_compat import LambdaContext, lambda_event, lambda_record
from shardline.records import StreamRecord
from tests.unit.test_delivery_processor import ARN, SHARD, Harness
from tests.unit.test_delivery_processor import record as make_record

TTL_DELETE = {
    "eventID": "ttl-1",
    "eventName": "REMOVE",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "eu-west-1",
    "dynamodb": {
        "ApproximateCreationDateTime": 1_700_000_000.0,
        "Keys": {"pk": {"S": "a"}},
        "OldImage": {"pk": {"S": "a"}, "n": {"N": "1.50"}},
        "SequenceNumber": "900",
        "SizeBytes": 30,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    },
    "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
}


def test_event_has_exactly_lambdas_fields_in_lambdas_order() -> None:
    event = lambda_event([StreamRecord(TTL_DELETE, SHARD)], ARN)
    (rec,) = event["Records"]
    assert list(rec) == [
        "eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb",
        "eventSourceARN", "userIdentity",
    ]  # fmt: skip
    assert rec["eventSourceARN"] == ARN
    assert rec["dynamodb"]["ApproximateCreationDateTime"] == 1_700_000_000.0
    assert rec["userIdentity"]["principalId"] == "dynamodb.amazonaws.com"
    assert list(event) == ["Records"]


def test_user_identity_only_when_present() -> None:
    assert "userIdentity" not in lambda_record(make_record(1).raw, ARN)


def test_window_fields_at_the_top_level() -> None:
    window = {
        "start": "2020-07-30T17:00:00Z", "end": "2020-07-30T17:05:00Z", "state": {"a": 1},
        "shardId": SHARD, "isFinalInvokeForWindow": False, "isWindowTerminatedEarly": False,
    }  # fmt: skip
    event = lambda_event([], ARN, window=window)
    assert event["window"] == {"start": "2020-07-30T17:00:00Z", "end": "2020-07-30T17:05:00Z"}
    assert event["state"] == {"a": 1} and event["shardId"] == SHARD
    assert event["eventSourceARN"] == ARN and event["isFinalInvokeForWindow"] is False


def test_context_attributes_and_remaining_time() -> None:
    now = [100.0]
    context = LambdaContext("orders-sync", region="eu-west-1", timeout=3, clock=lambda: now[0])
    assert context.function_name == "orders-sync"
    assert context.invoked_function_arn.startswith("arn:aws:lambda:eu-west-1:")
    assert context.memory_limit_in_mb == 128 and context.function_version == "$LATEST"
    assert context.log_group_name == "/aws/lambda/orders-sync"
    assert len(context.aws_request_id) == 36
    assert context.get_remaining_time_in_millis() == 3000
    now[0] += 1.5
    assert context.get_remaining_time_in_millis() == 1500
    now[0] += 10
    assert context.get_remaining_time_in_millis() == 0


def test_powertools_data_classes_read_our_event() -> None:
    event = DynamoDBStreamEvent(lambda_event([StreamRecord(TTL_DELETE, SHARD)], ARN))
    (rec,) = list(event.records)
    assert rec.event_name is not None and rec.event_name.name == "REMOVE"
    assert rec.event_source_arn == ARN
    assert rec.dynamodb is not None
    assert rec.dynamodb.sequence_number == "900"
    assert str(rec.dynamodb.old_image["n"]) == "1.50"
    assert rec.user_identity == TTL_DELETE["userIdentity"]


# --- an unmodified Powertools handler -----------------------------------------------------------

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
POISON = {"000000000000000000003"}
handled: list[str] = []


def record_handler(record: DynamoDBRecord) -> None:
    assert record.dynamodb is not None
    if record.dynamodb.sequence_number in POISON:
        raise ValueError("cannot handle this one")
    handled.append(record.dynamodb.sequence_number or "")


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


async def test_powertools_partial_batch_failures_retry_from_the_lowest() -> None:
    handled.clear()
    POISON.clear()
    POISON.add("000000000000000000003")
    h = await Harness(
        lambda_invoker(lambda_handler, ARN),
        DeliveryConfig(report_batch_item_failures=True, maximum_retry_attempts=1,
                       on_failure="file:///tmp/unused"),
    ).start()  # fmt: skip
    await h.page([make_record(i) for i in range(1, 6)])
    await h.end()
    # Powertools processes every record and reports 3; Lambda (and shardline) checkpoint
    # before 3 and retry 3..5; after the retry limit, 3..5 go to the destination.
    assert handled == [f"{i:021d}" for i in (1, 2, 4, 5, 4, 5)]
    assert h.destination.given_up() == [3, 4, 5]
    assert h.checkpoints()[0] == 2
    assert h.written[-1] == "SHARD_END"


async def test_powertools_handler_succeeds_after_a_transient_failure() -> None:
    handled.clear()
    POISON.clear()
    POISON.add("000000000000000000002")
    h = await Harness(
        lambda_invoker(lambda_handler, ARN), DeliveryConfig(report_batch_item_failures=True)
    ).start()
    await h.page([make_record(i) for i in range(1, 4)])
    await asyncio.sleep(0.2)
    POISON.clear()
    await h.end()
    assert handled[:2] == [f"{1:021d}", f"{3:021d}"]
    assert f"{2:021d}" in handled[2:]
    assert h.written[-1] == "SHARD_END"


def test_ttl_identity_gets_lambdas_casing() -> None:
    from shardline.lambda_compat import lambda_user_identity

    wire = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
    assert lambda_user_identity(wire) == {
        "principalId": "dynamodb.amazonaws.com",
        "type": "Service",
    }
