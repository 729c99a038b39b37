"""Facts about a change that every sink needs: its key, whether TTL deleted it, its time."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from shardline.records import StreamRecord
from shardline.sinks.base import KeyAttribute, SinkError, SnapshotRow

__all__ = [
    "changed_at",
    "is_ttl_delete",
    "key_values",
    "last_per_key",
    "snapshot_record",
    "typed_keys",
]

_TTL_PRINCIPAL = "dynamodb.amazonaws.com"


def is_ttl_delete(record: StreamRecord) -> bool:
    """Whether DynamoDB's time to live made this REMOVE (``userIdentity`` is the service)."""
    identity = record.user_identity
    if not identity or record.event_name != "REMOVE":
        return False
    principal = identity.get("principalId", identity.get("PrincipalId"))
    kind = identity.get("type", identity.get("Type"))
    return principal == _TTL_PRINCIPAL and kind == "Service"


def changed_at(record: StreamRecord) -> datetime | None:
    """The change's approximate creation time (``None`` when the service did not say)."""
    seconds = record.approximate_creation_seconds
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds else None


def last_per_key(records: Sequence[StreamRecord]) -> list[StreamRecord]:
    """The last change of each key, in the order of those last changes."""
    last: dict[bytes, StreamRecord] = {}
    for record in records:
        key = _key_identity(bytes(record.wire.dynamodb.Keys))
        last.pop(key, None)
        last[key] = record
    return list(last.values())


def _key_identity(raw: bytes) -> bytes:
    """A key's JSON with its attributes in one order (a composite key may come either way)."""
    if raw.count(b"{") <= 2:
        return raw  # one attribute: the bytes are the identity
    return orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)


def key_values(
    sink: str, schema: Sequence[KeyAttribute], keys: dict[str, Any], where: str
) -> list[Any]:
    """The typed key of an item (``{"id": {"S": "a"}}``) as column values: str, str, bytes.

    Numbers stay strings (the database parses them exactly). A missing key attribute, a
    type that differs from the table's key, or a NUL in a string is a permanent
    :class:`SinkError` naming ``where`` (the change).
    """
    values: list[Any] = []
    for attribute in schema:
        typed = keys.get(attribute.name)
        if not isinstance(typed, dict) or len(typed) != 1:
            raise SinkError(sink, f"{where}: key attribute {attribute.name} is missing")
        ((tag, value),) = typed.items()
        if tag != attribute.type:
            raise SinkError(
                sink,
                f"{where}: key attribute {attribute.name} is of type {tag}, "
                f"but the key of the table is {attribute.type}",
            )
        if tag == "B":
            values.append(base64.b64decode(value))
        elif tag == "S" and "\x00" in value:
            raise SinkError(sink, f"{where}: key {attribute.name} holds a NUL character")
        else:
            values.append(value)
    return values


def typed_keys(record: StreamRecord) -> dict[str, Any]:
    """The record's key in DynamoDB JSON."""
    raw = record.wire.dynamodb.Keys
    return orjson.loads(bytes(raw)) if raw else {}


def snapshot_record(row: SnapshotRow) -> StreamRecord:
    """A snapshot row as the INSERT a transform expects (sequence number 0)."""
    keys: dict[str, Any] = {}  # not known here; transforms read new_image
    raw = {
        "eventID": f"snapshot-{row.segment}-{row.ordinal}",
        "eventName": "INSERT",
        "dynamodb": {"Keys": keys, "NewImage": row.item, "SequenceNumber": "0"},
    }
    return StreamRecord(raw, f"snapshot-{row.segment}")
