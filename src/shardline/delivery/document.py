"""The failure document: one JSON object per failed batch, records included.

Lambda sends only pointers (``DDBStreamBatchInfo``) that expire with the stream. This
document keeps Lambda's fields, so tooling written for them still works, and adds the
``records`` themselves in Lambda's event form plus the ``error``::

    {"version": "1.0", "timestamp": "...Z",
     "requestContext": {"requestId", "condition", "approximateInvokeCount"},
     "error": {"type", "message"},
     "DDBStreamBatchInfo": {"shardId", "startSequenceNumber", "endSequenceNumber",
                            "approximateArrivalOfFirstRecord",
                            "approximateArrivalOfLastRecord", "batchSize", "streamArn"},
     "records": [<Lambda event records>]}

``{"Records": document["records"]}`` is a valid event for the same handler. When a
destination caps message size (SQS and SNS: 256 KiB), the batch is sent as several
documents, each with ``"part": {"index": i, "count": n}`` and its own sequence range.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from shardline.lambda_compat import lambda_record
from shardline.records import StreamRecord


@dataclass(frozen=True)
class FailedBatch:
    """What is known about a batch given up on."""

    shard_id: str
    stream_arn: str
    records: Sequence[StreamRecord]
    condition: str
    attempts: int
    error_type: str
    error_message: str


def failure_documents(
    batch: FailedBatch,
    *,
    max_bytes: int | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[dict[str, Any]]:
    """One document for the batch, or several parts when ``max_bytes`` requires it."""
    records = [lambda_record(r.raw, batch.stream_arn) for r in batch.records]
    groups = _groups_within(records, max_bytes) if max_bytes else [records]
    documents = [_document(batch, group, now()) for group in groups]
    if len(documents) > 1:
        for index, document in enumerate(documents):
            document["part"] = {"index": index, "count": len(documents)}
    return documents


def encode(document: dict[str, Any]) -> bytes:
    """The document as compact JSON bytes."""
    return orjson.dumps(document)


def _document(batch: FailedBatch, records: list[dict[str, Any]], at: datetime) -> dict[str, Any]:
    first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
    return {
        "version": "1.0",
        "timestamp": _iso_millis(at),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "condition": batch.condition,
            "approximateInvokeCount": batch.attempts,
        },
        "error": {"type": batch.error_type, "message": batch.error_message},
        "DDBStreamBatchInfo": {
            "shardId": batch.shard_id,
            "startSequenceNumber": first.get("SequenceNumber"),
            "endSequenceNumber": last.get("SequenceNumber"),
            "approximateArrivalOfFirstRecord": _arrival(first),
            "approximateArrivalOfLastRecord": _arrival(last),
            "batchSize": len(records),
            "streamArn": batch.stream_arn,
        },
        "records": records,
    }


_ENVELOPE_BYTES = 2048  # everything but the records, generously


def _groups_within(records: list[dict[str, Any]], max_bytes: int) -> list[list[dict[str, Any]]]:
    """Consecutive groups whose encoded records fit ``max_bytes`` with the envelope.

    A single record larger than the budget still gets a group of its own (the
    destination will refuse it, and the send is retried: nothing is dropped).
    """
    budget = max_bytes - _ENVELOPE_BYTES
    groups: list[list[dict[str, Any]]] = [[]]
    used = 0
    for record in records:
        size = len(orjson.dumps(record)) + 1
        if groups[-1] and used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(record)
        used += size
    return groups


def _arrival(ddb: dict[str, Any]) -> str | None:
    created = ddb.get("ApproximateCreationDateTime")
    if created is None:
        return None
    return _iso_millis(datetime.fromtimestamp(float(created), tz=UTC))


def _iso_millis(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
