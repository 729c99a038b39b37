"""Helpers for the notification sink tests: stream records and a CloudEvents parser."""

from __future__ import annotations

from typing import Any

from shardline.records import StreamRecord

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026-01-01T00:00:00.000"


def change(
    key: str,
    sequence: int,
    event: str = "MODIFY",
    *,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    shard: str = "shardId-000",
    ttl: bool = False,
) -> StreamRecord:
    """A change of item ``pk = key`` with the given images (DynamoDB JSON)."""
    ddb: dict[str, Any] = {
        "Keys": {"pk": {"S": key}},
        "SequenceNumber": str(sequence),
        "ApproximateCreationDateTime": 1767225600,
        "SizeBytes": 64,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        ddb["NewImage"] = {"pk": {"S": key}, **new}
    if old is not None:
        ddb["OldImage"] = {"pk": {"S": key}, **old}
    raw: dict[str, Any] = {
        "eventID": f"ev-{key}-{sequence}",
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": ddb,
    }
    if ttl:
        raw["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return StreamRecord(raw, shard)


def parse_cloudevent(headers: dict[str, str], body: bytes) -> Any:
    """A CloudEvent from an HTTP message (binary or structured) with the cloudevents SDK."""
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event

    return from_http_event(
        HTTPMessage(headers={k.lower(): v for k, v in headers.items()}, body=body)
    )
