"""GetRecords answers parsed into wire records (shardline.streams.wire)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shardline.records import StreamRecord
from shardline.streams.wire import (
    decode_records_answer,
    encode_record,
    load_map,
    record_from_mapping,
)

RECORD: dict[str, Any] = {
    "eventID": "e1",
    "eventName": "REMOVE",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "eu-west-1",
    "dynamodb": {
        "ApproximateCreationDateTime": 1700000000.25,
        "Keys": {"pk": {"S": "a"}},
        "OldImage": {"pk": {"S": "a"}, "b": {"B": "AAE="}, "n": {"NS": ["1", "2.50"]}},
        "SequenceNumber": "300000000000000000001",
        "SizeBytes": 40,
        "StreamViewType": "OLD_IMAGE",
    },
    "userIdentity": {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"},
}


def answer(*records: dict[str, Any], next_iterator: str | None = "it-2") -> bytes:
    body: dict[str, Any] = {"Records": list(records)}
    if next_iterator is not None:
        body["NextShardIterator"] = next_iterator
    return orjson.dumps(body)


def test_answer_round_trips_every_field_and_leaves_absent_ones_absent() -> None:
    records, next_iterator = decode_records_answer(answer(RECORD))
    assert next_iterator == "it-2"
    assert orjson.loads(encode_record(records[0])) == RECORD
    assert "NewImage" not in orjson.loads(encode_record(records[0]))["dynamodb"]


def test_item_maps_stay_json_until_read() -> None:
    (wire,), _ = decode_records_answer(answer(RECORD))
    assert bytes(wire.dynamodb.OldImage).startswith(b'{"pk":')
    assert load_map(wire.dynamodb.NewImage) is None
    record = StreamRecord(wire, "shardId-1")
    assert record.new_image is None
    assert record.old_image is not None and record.old_image["b"] == b"\x00\x01"
    assert record.keys_json == {"pk": {"S": "a"}}
    assert record.user_identity == RECORD["userIdentity"]
    assert record.approximate_creation_seconds == 1700000000.25


def test_end_of_shard_and_empty_answers() -> None:
    assert decode_records_answer(answer(next_iterator=None)) == ([], None)
    assert decode_records_answer(b"{}") == ([], None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty GetRecords answer"),
        (b"not json", "malformed"),
        (b"[]", "Expected `object`"),
        (orjson.dumps({"Records": [{"eventName": "INSERT"}]}), "eventID"),
        (orjson.dumps({"Records": [{"eventID": "e", "eventName": "X", "dynamodb": {}}]}), "Seq"),
    ],
)
def test_a_body_that_is_not_a_records_answer_is_a_value_error(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_records_answer(body)


def test_record_from_mapping_names_the_missing_field() -> None:
    with pytest.raises(ValueError, match=r"not a DynamoDB Streams record: .*eventName"):
        record_from_mapping({"eventID": "e"})
    with pytest.raises(ValueError, match="not a DynamoDB Streams record"):
        StreamRecord({"eventID": "e", "eventName": "INSERT", "dynamodb": []}, "s")
