"""GetRecords answers parsed into compact wire records.

A full GetRecords page is up to 1,000 records. Parsed into dicts, one page of ~1 KB
images becomes ~300,000 objects the cyclic garbage collector keeps traversing, and most
of them (every attribute of every image) are often never read. Here the envelope of each
record -- ids, sequence number, times, sizes -- is parsed by msgspec into structs the
collector does not track, and the ``Keys``, ``NewImage`` and ``OldImage`` maps stay as
:class:`msgspec.Raw` slices of the answer's bytes until somebody reads them
(:class:`shardline.records.StreamRecord` parses them on first access).

The structs hold every field of the service's ``Record`` shape, so
:func:`encode_record` gives back the record's JSON (absent fields stay absent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import orjson

__all__ = [
    "WireRecord",
    "WireStreamData",
    "decode_records_answer",
    "encode_record",
    "record_from_mapping",
]

_ABSENT = msgspec.Raw()


class WireStreamData(msgspec.Struct, gc=False, omit_defaults=True, kw_only=True):
    """The ``dynamodb`` part of a record; the three item maps are unparsed JSON."""

    ApproximateCreationDateTime: int | float | None = None
    Keys: msgspec.Raw = _ABSENT
    NewImage: msgspec.Raw = _ABSENT
    OldImage: msgspec.Raw = _ABSENT
    SequenceNumber: str
    SizeBytes: int | None = None
    StreamViewType: str | None = None


class WireRecord(msgspec.Struct, gc=False, omit_defaults=True, kw_only=True):
    """One stream record as the service sends it (fields in the service's order)."""

    eventID: str
    eventName: str
    eventVersion: str | None = None
    eventSource: str | None = None
    awsRegion: str | None = None
    dynamodb: WireStreamData
    #: Set for deletions made by DynamoDB's time to live; kept as sent.
    userIdentity: dict[str, Any] | None = None


class _RecordsAnswer(msgspec.Struct, gc=False):
    Records: list[WireRecord] = []
    NextShardIterator: str | None = None


_ANSWER_DECODER = msgspec.json.Decoder(_RecordsAnswer)
_RECORD_DECODER = msgspec.json.Decoder(WireRecord)
_ENCODER = msgspec.json.Encoder()


def decode_records_answer(body: bytes) -> tuple[list[WireRecord], str | None]:
    """The records and next iterator of a GetRecords answer body.

    Raises :class:`ValueError` (naming the bad field) for a body that is not a GetRecords
    answer: empty, not JSON, or a record without its ids and sequence number. (An empty
    body must not pass for "no records, no next iterator", which means the shard ended.)
    """
    if not body:
        raise ValueError("empty GetRecords answer")
    try:
        answer = _ANSWER_DECODER.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise ValueError(str(exc)) from None
    return answer.Records, answer.NextShardIterator or None


def encode_record(record: WireRecord) -> bytes:
    """The record's JSON, as the service sent it (the item maps byte for byte)."""
    return _ENCODER.encode(record)


def record_from_mapping(raw: Mapping[str, Any]) -> WireRecord:
    """A wire record from a record dict in the service's JSON form (tests, fixtures).

    Raises :class:`ValueError` when a required field is missing or has the wrong type.
    """
    try:
        return _RECORD_DECODER.decode(orjson.dumps(raw))
    except (msgspec.DecodeError, TypeError) as exc:
        raise ValueError(f"not a DynamoDB Streams record: {exc}") from None


def load_map(raw: msgspec.Raw) -> dict[str, Any] | None:
    """Parse one item map (``Keys``, ``NewImage``, ``OldImage``); ``None`` when absent."""
    if not raw:
        return None
    value: dict[str, Any] = orjson.loads(memoryview(raw))
    return value
