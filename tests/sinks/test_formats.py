"""Message formats: native, CloudEvents (parsed by the cloudevents SDK), Debezium, Lambda."""

from __future__ import annotations

import json
from decimal import Decimal

import orjson
import pytest

from shardline.sinks.formats import (
    MessageFormat,
    Source,
    cloudevent_headers,
    encode,
    encode_batch,
    key_text,
    snapshot_change,
)
from tests.sinks.notify_support import ARN, change, parse_cloudevent

SOURCE = Source(table="Orders", stream_arn=ARN, key_names=("pk",), name="orders-app")
BIG = "12345678901234567890123456789012345678"  # 38 digits: no float holds it


def test_native_schema_with_every_digit() -> None:
    record = change("a", 7, "MODIFY", new={"n": {"N": BIG}}, old={"n": {"N": "1.50"}})
    body = encode(record, MessageFormat(), SOURCE)
    message = json.loads(body, parse_float=Decimal, parse_int=Decimal)
    assert message["version"] == 1
    assert message["id"] == "ev-a-7" and message["event"] == "MODIFY"
    assert message["table"] == "Orders" and message["stream_arn"] == ARN
    assert message["shard_id"] == "shardId-000" and message["sequence_number"] == "7"
    assert message["time"] == "2026-01-01T00:00:00Z"
    assert message["key"] == {"pk": "a"}
    assert message["new"]["n"] == Decimal(BIG)
    assert b'"n":1.50' in body  # the digits as DynamoDB wrote them
    assert message["ttl_delete"] is False and message["snapshot"] is False


def test_typed_images_and_ttl_delete() -> None:
    record = change("a", 9, "REMOVE", old={"n": {"N": "3"}}, ttl=True)
    message = orjson.loads(encode(record, MessageFormat(images="typed"), SOURCE))
    assert message["key"] == {"pk": {"S": "a"}}
    assert message["old"] == {"pk": {"S": "a"}, "n": {"N": "3"}}
    assert message["new"] is None and message["ttl_delete"] is True


@pytest.mark.parametrize(
    ("event", "suffix"), [("INSERT", "inserted"), ("MODIFY", "modified"), ("REMOVE", "removed")]
)
def test_cloudevents_structured_parses(event: str, suffix: str) -> None:
    record = change("k1", 123, event, new={"v": {"N": "1"}} if event != "REMOVE" else None)
    fmt = MessageFormat("cloudevents", type_prefix="com.example")
    body = encode(record, fmt, SOURCE)
    parsed = parse_cloudevent({"content-type": fmt.content_type}, body)
    assert parsed.get_id() == "ev-k1-123"
    assert parsed.get_source() == ARN
    assert parsed.get_type() == f"com.example.dynamodb.item.{suffix}"
    assert parsed.get_subject() == "k1"
    assert parsed.get_extension("sequence") == "123".zfill(40)
    data = parsed.get_data()
    assert data["key"] == {"pk": "k1"} and data["table"] == "Orders"


def test_cloudevents_binary_parses() -> None:
    record = change('a b%"c', 5, "INSERT", new={"v": {"S": "x"}})
    headers, body = cloudevent_headers(record, MessageFormat("cloudevents"), SOURCE)
    assert all(" " not in v for k, v in headers.items() if k != "content-type")
    parsed = parse_cloudevent(headers, body)
    assert parsed.get_subject() == 'a b%"c'
    assert parsed.get_type() == "shardline.dynamodb.item.inserted"
    assert parsed.get_data()["new"] == {"pk": 'a b%"c', "v": "x"}


def test_sequence_extension_sorts_as_numbers() -> None:
    small = orjson.loads(encode(change("a", 99), MessageFormat("cloudevents"), SOURCE))
    large = orjson.loads(encode(change("a", 100), MessageFormat("cloudevents"), SOURCE))
    assert small["sequence"] < large["sequence"]


@pytest.mark.parametrize(("event", "op"), [("INSERT", "c"), ("MODIFY", "u"), ("REMOVE", "d")])
def test_debezium_envelope(event: str, op: str) -> None:
    new = {"v": {"N": "2"}} if event != "REMOVE" else None
    old = {"v": {"N": "1"}} if event != "INSERT" else None
    record = change("a", 42, event, new=new, old=old)
    message = orjson.loads(encode(record, MessageFormat("debezium"), SOURCE, now_ms=1000))
    assert message["op"] == op and message["ts_ms"] == 1000
    assert message["before"] == ({"pk": "a", "v": 1} if old else None)
    assert message["after"] == ({"pk": "a", "v": 2} if new else None)
    source = message["source"]
    assert source["connector"] == "dynamodb" and source["name"] == "orders-app"
    assert source["table"] == "Orders" and source["stream_arn"] == ARN
    assert source["shard_id"] == "shardId-000" and source["sequence_number"] == "42"
    assert source["event_id"] == "ev-a-42" and source["snapshot"] == "false"
    assert source["ts_ms"] == 1767225600000 and source["key"] == {"pk": "a"}
    assert message["transaction"] is None


def test_debezium_snapshot_row_is_a_read() -> None:
    item = {"pk": {"S": "z"}, "v": {"N": "5"}}
    record = snapshot_change(item, ("pk",), segment=2, ordinal=17)
    message = orjson.loads(encode(record, MessageFormat("debezium"), SOURCE, now_ms=1))
    assert message["op"] == "r" and message["source"]["snapshot"] == "true"
    assert message["after"] == {"pk": "z", "v": 5} and message["before"] is None
    assert key_text(record, ("pk",)) == "z"


def test_lambda_record_shape() -> None:
    record = change("a", 3, "INSERT", new={"v": {"N": "1"}})
    message = orjson.loads(encode(record, MessageFormat("lambda"), SOURCE))
    assert message["eventSourceARN"] == ARN and message["eventName"] == "INSERT"
    assert message["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "v": {"N": "1"}}
    assert message["dynamodb"]["SequenceNumber"] == "3"


def test_composite_key_text_and_batch() -> None:
    raw = {
        "eventID": "e",
        "eventName": "INSERT",
        "dynamodb": {"Keys": {"sk": {"N": "2"}, "pk": {"S": "a"}}, "SequenceNumber": "1"},
    }
    from shardline.records import StreamRecord

    record = StreamRecord(raw, "s")
    assert key_text(record, ("pk", "sk")) == "a|2"
    assert orjson.loads(encode_batch([b"1", b"{}"])) == [1, {}]


def test_bad_format_names() -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        MessageFormat("avro")
    with pytest.raises(ValueError, match="images must be"):
        MessageFormat(images="raw")
