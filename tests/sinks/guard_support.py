"""Changes, snapshot rows and key schemas for the never-older-over-newer tests of every sink."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from shardline.records import StreamRecord
from shardline.sinks.base import KeyAttribute, SnapshotRow

SCHEMAS: dict[str, tuple[KeyAttribute, ...]] = {
    "hash_s": (KeyAttribute("pk", "S"),),
    "hash_s_range_n": (KeyAttribute("pk", "S"), KeyAttribute("sk", "N", "RANGE")),
    "hash_b": (KeyAttribute("pk", "B"),),
}


def typed_key(schema: Sequence[KeyAttribute], name: str) -> dict[str, Any]:
    """The key of item ``name`` under ``schema``, in DynamoDB JSON."""
    key: dict[str, Any] = {}
    for attribute in schema:
        if attribute.type == "S":
            key[attribute.name] = {"S": name}
        elif attribute.type == "N":
            key[attribute.name] = {"N": str(len(name) * 10 + 5)}
        else:
            key[attribute.name] = {"B": base64.b64encode(name.encode() + b"\x00\xff").decode()}
    return key


def change(
    schema: Sequence[KeyAttribute], seq: int, name: str, event: str = "MODIFY", value: int = 0
) -> StreamRecord:
    keys = typed_key(schema, name)
    dynamodb: dict[str, Any] = {"Keys": keys, "SequenceNumber": f"{seq:021d}", "SizeBytes": 1}
    if event != "REMOVE":
        dynamodb["NewImage"] = {**keys, "value": {"N": str(value)}, "name": {"S": name}}
    dynamodb["ApproximateCreationDateTime"] = 1_700_000_000 + seq
    return StreamRecord({"eventID": f"e{seq}", "eventName": event, "dynamodb": dynamodb}, "s-1")


def snapshot(schema: Sequence[KeyAttribute], name: str, value: int, ordinal: int) -> SnapshotRow:
    keys = typed_key(schema, name)
    return SnapshotRow({**keys, "value": {"N": str(value)}, "name": {"S": name}}, 0, ordinal)
