"""The stream record of one write, as GetRecords returns it (JSON bytes, made with orjson).

:func:`record_encoder` builds the record of a write when moto makes it and leaves its
``SequenceNumber`` to the shard graph, which fills it in when the record is appended.
A write by the DynamoDB service (a TTL delete) carries :data:`TTL_IDENTITY`.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import orjson

from shardline.local.graph import Encoder

TTL_IDENTITY = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
"""``userIdentity`` of a TTL delete, as the GetRecords wire format (botocore's model) has it."""


def record_encoder(
    table: Any, view_type: str, old: Any, new: Any, *, by_service: bool = False
) -> tuple[bytes, Encoder]:
    """The partition key of a write, and an encoder of its stream record."""
    item = old if old is not None else new
    keys = {table.hash_key_attr: item.hash_key.to_json()}
    if table.range_key_attr is not None:
        keys[table.range_key_attr] = item.range_key.to_json()
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": float(int(time.time())),
        "Keys": keys,
    }
    if new is not None and view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        dynamodb["NewImage"] = new.to_json()["Attributes"]
    if old is not None and view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
        dynamodb["OldImage"] = old.to_json()["Attributes"]
    dynamodb["SequenceNumber"] = ""
    dynamodb["SizeBytes"] = len(_dumps(dynamodb)) + 21
    dynamodb["StreamViewType"] = view_type
    record = {
        "eventID": os.urandom(16).hex(),
        "eventName": _event_name(old, new),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": table.region_name,
        "dynamodb": dynamodb,
    }
    if by_service:
        record["userIdentity"] = dict(TTL_IDENTITY)

    def encode(sequence_number: str) -> bytes:
        dynamodb["SequenceNumber"] = sequence_number
        return _dumps(record)

    return _dumps(keys[table.hash_key_attr]), encode


def _event_name(old: Any, new: Any) -> str:
    if old is None:
        return "INSERT"
    return "REMOVE" if new is None else "MODIFY"


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"cannot encode {type(value).__name__}")
