"""An unmodified Lambda function using Powertools' BatchProcessor (used by the tests)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
HANDLED: list[str] = []
FAILED: list[str] = []
SOURCES: list[str] = []
_fail_once: set[str] = set()


def reset(fail_once: set[str]) -> None:
    """Test hook: forget what was handled; fail these keys once each."""
    HANDLED.clear()
    FAILED.clear()
    SOURCES.clear()
    _fail_once.clear()
    _fail_once.update(fail_once)


def record_handler(record: DynamoDBRecord) -> None:
    assert record.dynamodb is not None
    key = record.dynamodb.keys["pk"]
    SOURCES.append(record.event_source_arn or "")
    if key in _fail_once:
        _fail_once.discard(key)
        FAILED.append(key)
        raise RuntimeError(f"{key} failed")
    HANDLED.append(key)


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    assert context.get_remaining_time_in_millis() > 0
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
