"""The KCL 2.x/3.x MultiLang protocol: encode daemon messages, decode child lines. Pure.

Each daemon message is one JSON object on one line. Every nested object carries its
``action`` (amazon-kclpy decodes with an ``object_hook`` that dispatches on it), so each
record is ``{"action": "record", ...}``. A record's ``data`` is the base64 of the JSON of
the whole stream record in the wire casing the DynamoDB Streams Kinesis adapter uses,
with ``dynamodb.ApproximateCreationDateTime`` in epoch **milliseconds**.

The child answers each message with ``{"action": "status", "responseFor": <action>}``
and may send ``{"action": "checkpoint", "sequenceNumber": ..., "subSequenceNumber": ...}``
requests before that, each answered with a ``checkpoint`` message whose ``error`` is
null or the name of KCL's exception.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from shardline.streams.wire import WireRecord, encode_record

__all__ = [
    "INITIALIZE",
    "LEASE_LOST",
    "PROCESS_RECORDS",
    "SHARD_ENDED",
    "SHUTDOWN_REQUESTED",
    "CheckpointRequest",
    "ProtocolError",
    "Status",
    "adapter_record_json",
    "checkpoint_reply",
    "decode_child_line",
    "initialize",
    "lease_lost",
    "process_records",
    "shard_ended",
    "shutdown_requested",
]

INITIALIZE = "initialize"
PROCESS_RECORDS = "processRecords"
LEASE_LOST = "leaseLost"
SHARD_ENDED = "shardEnded"
SHUTDOWN_REQUESTED = "shutdownRequested"


class ProtocolError(Exception):
    """The child broke the protocol (a status for the wrong action, a malformed request)."""


@dataclass(frozen=True)
class Status:
    """The child finished the call ``response_for``."""

    response_for: str


@dataclass(frozen=True)
class CheckpointRequest:
    """``sequence_number`` None means the largest permitted value (SHARD_END at shard end)."""

    sequence_number: str | None
    sub_sequence_number: int | None
    raw_sequence_number: Any = None


ChildMessage = Status | CheckpointRequest


def _line(message: Mapping[str, Any]) -> bytes:
    return orjson.dumps(message) + b"\n"


def initialize(shard_id: str, sequence_number: str | None, sub_sequence_number: int) -> bytes:
    """``initialize``: the shard and its checkpoint (a sequence number or a sentinel)."""
    return _line(
        {
            "action": INITIALIZE,
            "shardId": shard_id,
            "sequenceNumber": sequence_number,
            "subSequenceNumber": sub_sequence_number,
        }
    )


def process_records(records: Sequence[WireRecord], millis_behind_latest: int) -> bytes:
    """``processRecords`` for the wire records (``StreamRecord.wire``) of one shard."""
    return _line(
        {
            "action": PROCESS_RECORDS,
            "records": [_record(record) for record in records],
            "millisBehindLatest": millis_behind_latest,
        }
    )


def lease_lost() -> bytes:
    """``leaseLost``: the lease moved to another worker; the child must not checkpoint."""
    return _line({"action": LEASE_LOST})


def shard_ended() -> bytes:
    """``shardEnded``: every record was delivered; the child checkpoints SHARD_END."""
    return _line({"action": SHARD_ENDED})


def shutdown_requested() -> bytes:
    """``shutdownRequested``: the daemon is stopping; the child may checkpoint."""
    return _line({"action": SHUTDOWN_REQUESTED})


def checkpoint_reply(request: CheckpointRequest, error: str | None) -> bytes:
    """Answer a checkpoint request, echoing its values; ``error`` is KCL's exception name."""
    return _line(
        {
            "action": "checkpoint",
            "sequenceNumber": request.raw_sequence_number,
            "subSequenceNumber": request.sub_sequence_number,
            "error": error,
        }
    )


def _record(record: WireRecord) -> dict[str, Any]:
    sequence_number = record.dynamodb.SequenceNumber
    return {
        "action": "record",
        "data": base64.b64encode(adapter_record_json(record)).decode("ascii"),
        "partitionKey": sequence_number,
        "sequenceNumber": sequence_number,
        "subSequenceNumber": 0,
        "approximateArrivalTimestamp": _epoch_millis(record.dynamodb.ApproximateCreationDateTime),
    }


def adapter_record_json(record: WireRecord) -> bytes:
    """The stream record as the Kinesis adapter serializes it: wire casing, time in ms.

    The item maps are copied as the service sent them, never parsed.
    """
    ddb = record.dynamodb
    if ddb.ApproximateCreationDateTime is not None:
        millis = _epoch_millis(ddb.ApproximateCreationDateTime)
        ddb = msgspec.structs.replace(ddb, ApproximateCreationDateTime=millis)
        record = msgspec.structs.replace(record, dynamodb=ddb)
    return encode_record(record)


def _epoch_millis(seconds: Any) -> int:
    return 0 if seconds is None else round(float(seconds) * 1000)


def decode_child_line(line: bytes) -> ChildMessage | None:
    """Decode one stdout line of the child.

    Returns None for a line that is not a protocol message (blank, not JSON, not an
    object with a known ``action``): KCL skips those. Raises :class:`ProtocolError` for a
    known message with bad fields.
    """
    text = line.strip()
    if not text or text[:1] != b"{":
        return None
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict):
        return None
    action = message.get("action")
    if action == "status":
        return _status(message)
    if action == "checkpoint":
        return _checkpoint(message)
    return None


def _status(message: Mapping[str, Any]) -> Status:
    response_for = message.get("responseFor")
    if not isinstance(response_for, str):
        raise ProtocolError(f"status without responseFor: {dict(message)!r}")
    return Status(response_for)


def _checkpoint(message: Mapping[str, Any]) -> CheckpointRequest:
    raw_sequence = message.get("sequenceNumber")
    raw_sub = message.get("subSequenceNumber")
    if raw_sequence is not None and not isinstance(raw_sequence, str | int):
        raise ProtocolError(f"checkpoint with a bad sequenceNumber: {raw_sequence!r}")
    if raw_sub is not None and (not isinstance(raw_sub, int) or isinstance(raw_sub, bool)):
        raise ProtocolError(f"checkpoint with a bad subSequenceNumber: {raw_sub!r}")
    sequence = None if raw_sequence is None else str(raw_sequence)
    return CheckpointRequest(sequence, raw_sub, raw_sequence)
