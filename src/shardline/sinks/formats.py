"""Messages for a change: shardline's native JSON, CloudEvents 1.0, Debezium, Lambda's record.

Pure functions from a :class:`~shardline.records.StreamRecord` (and what the sink knows
about its source, :class:`Source`) to the bytes a notification sink sends. Every sink
that sends messages (webhooks, SQS, SNS, EventBridge) takes ``format=`` and ``images=``:

``format=native`` (default)
    ``{"version": 1, "id", "event", "table", "stream_arn", "shard_id", "sequence_number",
    "time", "key", "old", "new", "ttl_delete", "snapshot"}``.
``format=cloudevents``
    CloudEvents 1.0, structured mode: ``id`` = event id, ``source`` = stream ARN,
    ``type`` = ``<prefix>.dynamodb.item.inserted|modified|removed``, ``subject`` = the key
    (:func:`key_text`), ``time``, extensions ``sequence`` (the sequence number zero-padded
    to 40 digits: string order is number order), ``partitionkey`` (the key) and
    ``snapshot`` (snapshot rows only); ``data`` = ``{"table", "key", "old", "new",
    "ttl_delete"}``. Webhooks may send binary mode (``ce-*`` headers,
    :func:`cloudevent_headers`).
``format=debezium``
    Debezium's change-event value: ``before``, ``after``, ``op`` (``c``/``u``/``d``,
    ``r`` for snapshot rows), ``ts_ms`` (when shardline sent it), ``source`` (connector
    ``dynamodb``, ``name``, ``ts_ms`` of the change, ``snapshot`` ``"true"``/``"false"``,
    ``table``, ``stream_arn``, ``shard_id``, ``sequence_number``, ``event_id``, ``key``),
    ``transaction`` (``null``).
``format=lambda``
    The record exactly as Lambda's DynamoDB event shows it (typed images, always).

Images (``key``, ``old``, ``new``, ``before``, ``after``) are plain JSON by default
(:mod:`shardline.sinks.values`: numbers are JSON numbers written with every digit of
DynamoDB's number, never through a float -- a receiver that needs all 38 digits parses
numbers as decimals; binary as base64; sets as sorted arrays) or DynamoDB's typed JSON
with ``images=typed`` (numbers are strings there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from shardline.lambda_compat import lambda_record
from shardline.records import StreamRecord
from shardline.sinks.changes import is_ttl_delete
from shardline.sinks.values import plain_item

__all__ = [
    "FORMATS",
    "IMAGES",
    "NATIVE_VERSION",
    "MessageFormat",
    "Source",
    "cloudevent_headers",
    "cloudevent_type",
    "encode",
    "encode_batch",
    "key_text",
    "padded",
    "snapshot_change",
]

FORMATS: Final = ("native", "cloudevents", "debezium", "lambda")
IMAGES: Final = ("plain", "typed")
NATIVE_VERSION: Final = 1
_CE_TYPES: Final = {"INSERT": "inserted", "MODIFY": "modified", "REMOVE": "removed"}
_DEBEZIUM_OPS: Final = {"INSERT": "c", "MODIFY": "u", "REMOVE": "d"}


@dataclass(frozen=True)
class MessageFormat:
    """How a change is written: ``kind`` (one of :data:`FORMATS`), ``images``
    (``plain``/``typed``) and the CloudEvents ``type_prefix``."""

    kind: str = "native"
    images: str = "plain"
    type_prefix: str = "shardline"

    def __post_init__(self) -> None:
        if self.kind not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.kind!r}")
        if self.images not in IMAGES:
            raise ValueError(f"images must be plain or typed, not {self.images!r}")

    @property
    def content_type(self) -> str:
        """The media type of one message in this format."""
        if self.kind == "cloudevents":
            return "application/cloudevents+json; charset=utf-8"
        return "application/json"

    @property
    def batch_content_type(self) -> str:
        """The media type of a JSON array of messages."""
        if self.kind == "cloudevents":
            return "application/cloudevents-batch+json; charset=utf-8"
        return "application/json"


@dataclass(frozen=True)
class Source:
    """What a message says about where the change comes from."""

    table: str = ""
    stream_arn: str = ""
    key_names: tuple[str, ...] = ()
    name: str = "shardline"  # Debezium's source.name (the application)


def padded(sequence_number: str) -> str:
    """A sequence number as 40 zero-padded digits (string order is number order)."""
    return sequence_number.zfill(40)


def key_text(record: StreamRecord, key_names: Sequence[str] = ()) -> str:
    """The item's key as one string: the key values (hash first) joined by ``|``.

    Strings as they are, numbers as DynamoDB wrote them, binary as base64. Used as the
    CloudEvents ``subject``, SQS/SNS ``MessageGroupId`` and the per-key order of webhooks.
    """
    keys = record.keys_json
    names = list(key_names) or sorted(keys)
    parts = []
    for name in names:
        typed = keys.get(name)
        if isinstance(typed, dict) and len(typed) == 1:
            parts.append(str(next(iter(typed.values()))))
    return "|".join(parts)


def cloudevent_type(record: StreamRecord, prefix: str) -> str:
    """``<prefix>.dynamodb.item.inserted|modified|removed``."""
    return f"{prefix}.dynamodb.item.{_CE_TYPES.get(record.event_name, 'changed')}"


def is_snapshot(record: StreamRecord) -> bool:
    """Whether the record is a snapshot row (:func:`~shardline.sinks.changes.snapshot_record`)."""
    return record.shard_id.startswith("snapshot-")


def encode(
    record: StreamRecord, fmt: MessageFormat, source: Source, *, now_ms: int | None = None
) -> bytes:
    """One change as one message (JSON bytes) in ``fmt``.

    ``now_ms`` is Debezium's ``ts_ms`` (default: the wall clock).
    """
    return orjson.dumps(message(record, fmt, source, now_ms=now_ms))


def encode_batch(messages: Sequence[bytes]) -> bytes:
    """Messages already encoded, as one JSON array."""
    return b"[" + b",".join(messages) + b"]"


def message(
    record: StreamRecord, fmt: MessageFormat, source: Source, *, now_ms: int | None = None
) -> dict[str, Any]:
    """One change as a JSON-ready dict in ``fmt`` (numbers as :class:`orjson.Fragment`)."""
    if fmt.kind == "lambda":
        return lambda_record(record.raw, source.stream_arn)
    if fmt.kind == "cloudevents":
        return _cloudevent(record, fmt, source)
    if fmt.kind == "debezium":
        return _debezium(record, fmt, source, now_ms)
    return _native(record, fmt, source)


def _images(record: StreamRecord, fmt: MessageFormat) -> tuple[Any, Any, Any]:
    """(key, old, new) in the chosen image form; a missing image is ``None``."""
    ddb = record.wire.dynamodb
    values: list[Any] = []
    for raw in (ddb.Keys, ddb.OldImage, ddb.NewImage):
        if not raw:
            values.append(None)
        elif fmt.images == "typed":
            values.append(orjson.Fragment(bytes(raw)))
        else:
            values.append(plain_item(orjson.loads(bytes(raw))))
    key, old, new = values
    return key if key is not None else {}, old, new


def _time(record: StreamRecord) -> str | None:
    seconds = record.approximate_creation_seconds
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def _native(record: StreamRecord, fmt: MessageFormat, source: Source) -> dict[str, Any]:
    key, old, new = _images(record, fmt)
    return {
        "version": NATIVE_VERSION,
        "id": record.event_id,
        "event": record.event_name,
        "table": source.table,
        "stream_arn": source.stream_arn,
        "shard_id": record.shard_id,
        "sequence_number": record.sequence_number,
        "time": _time(record),
        "key": key,
        "old": old,
        "new": new,
        "ttl_delete": is_ttl_delete(record),
        "snapshot": is_snapshot(record),
    }


def _cloudevent(record: StreamRecord, fmt: MessageFormat, source: Source) -> dict[str, Any]:
    key, old, new = _images(record, fmt)
    event: dict[str, Any] = {"specversion": "1.0", **_ce_attributes(record, fmt, source)}
    event["datacontenttype"] = "application/json"
    event["data"] = {
        "table": source.table,
        "key": key,
        "old": old,
        "new": new,
        "ttl_delete": is_ttl_delete(record),
    }
    return event


def _ce_attributes(record: StreamRecord, fmt: MessageFormat, source: Source) -> dict[str, Any]:
    """The CloudEvents context attributes besides ``specversion`` and ``datacontenttype``."""
    subject = key_text(record, source.key_names)
    attributes: dict[str, Any] = {
        "id": record.event_id,
        "source": source.stream_arn or f"dynamodb:{source.table}",
        "type": cloudevent_type(record, fmt.type_prefix),
        "subject": subject,
        "sequence": padded(record.sequence_number),
        "partitionkey": subject,
    }
    time = _time(record)
    if time is not None:
        attributes["time"] = time
    if is_snapshot(record):
        attributes["snapshot"] = True
    return attributes


def cloudevent_headers(
    record: StreamRecord, fmt: MessageFormat, source: Source
) -> tuple[dict[str, str], bytes]:
    """CloudEvents HTTP binary mode: the ``ce-*`` headers and the body (the ``data``)."""
    event = _cloudevent(record, fmt, source)
    headers = {"ce-specversion": "1.0", "content-type": "application/json"}
    for name, value in _ce_attributes(record, fmt, source).items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        headers[f"ce-{name}"] = _percent_encode(text)
    return headers, orjson.dumps(event["data"])


def _percent_encode(value: str) -> str:
    """Header values per the CloudEvents HTTP binding: non-printable ASCII, space, ``"``
    and ``%`` percent-encoded as UTF-8."""
    out = []
    for char in value:
        if 0x21 <= ord(char) <= 0x7E and char not in '"%':
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode())
    return "".join(out)


def _debezium(
    record: StreamRecord, fmt: MessageFormat, source: Source, now_ms: int | None
) -> dict[str, Any]:
    key, old, new = _images(record, fmt)
    snapshot = is_snapshot(record)
    op = "r" if snapshot else _DEBEZIUM_OPS.get(record.event_name, "u")
    if now_ms is None:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
    return {
        "before": old,
        "after": new,
        "op": op,
        "ts_ms": now_ms,
        "source": {
            "connector": "dynamodb",
            "name": source.name,
            "ts_ms": int(record.approximate_creation_seconds * 1000),
            "snapshot": "true" if snapshot else "false",
            "table": source.table,
            "stream_arn": source.stream_arn,
            "shard_id": record.shard_id,
            "sequence_number": record.sequence_number,
            "event_id": record.event_id,
            "key": key,
        },
        "transaction": None,
    }


def snapshot_change(
    item: dict[str, Any], key_names: Sequence[str], segment: int, ordinal: int
) -> StreamRecord:
    """A snapshot row (a scanned item in DynamoDB JSON) as the INSERT a message is made of.

    Its shard is ``snapshot-<segment>``, its sequence number the row's place in the segment
    and its event id ``snapshot-<segment>-<ordinal>`` (the same after a resumed scan).
    """
    raw = {
        "eventID": f"snapshot-{segment}-{ordinal}",
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {name: item[name] for name in key_names if name in item},
            "NewImage": item,
            "SequenceNumber": str(ordinal),
        },
    }
    return StreamRecord(raw, f"snapshot-{segment}")
