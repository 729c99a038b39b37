"""DynamoDB-JSON decoding and the lazy StreamRecord wrapper."""

from __future__ import annotations

import base64
import decimal
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from boto3.dynamodb.types import Binary, TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from shardline.records import StreamRecord, decode_item, decode_item_json, decode_value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- decode_value, one type at a time ----------------------------------------------


@pytest.mark.parametrize(
    ("av", "expected"),
    [
        ({"S": "hello"}, "hello"),
        ({"S": ""}, ""),
        ({"S": "ünïcødé ✓ 🦆"}, "ünïcødé ✓ 🦆"),
        ({"N": "42"}, Decimal(42)),
        ({"N": "-0.001"}, Decimal("-0.001")),
        ({"N": "1E+3"}, Decimal("1E+3")),
        ({"B": b64(b"\x00\xffbin")}, b"\x00\xffbin"),
        ({"B": ""}, b""),
        ({"BOOL": True}, True),
        ({"BOOL": False}, False),
        ({"NULL": True}, None),
        ({"M": {}}, {}),
        ({"L": []}, []),
        ({"SS": ["a", "b", ""]}, {"a", "b", ""}),
        ({"SS": []}, set()),
        ({"NS": ["1", "2.5"]}, {Decimal(1), Decimal("2.5")}),
        ({"NS": []}, set()),
        ({"BS": [b64(b"x"), b64(b"\x00")]}, {b"x", b"\x00"}),
        ({"BS": []}, set()),
    ],
)
def test_decode_each_type(av: dict[str, Any], expected: Any) -> None:
    value = decode_value(av)
    assert value == expected
    assert type(value) is type(expected)


def test_numbers_keep_their_exact_form_and_38_digits() -> None:
    assert str(decode_value({"N": "1.50"})) == "1.50"
    big = "9" * 38
    assert decode_value({"N": big}) == int(big)
    assert (
        str(decode_value({"N": "-1" + "0" * 37 + "E+88"}))
        == "-1.0000000000000000000000000000000000000E+125"
    )
    tiny = "1E-130"
    assert decode_value({"N": tiny}) == Decimal(tiny)
    smallest_with_38_digits = "1.0000000000000000000000000000000000001E-130"
    assert str(decode_value({"N": smallest_with_38_digits})) == smallest_with_38_digits


def test_a_number_that_would_need_rounding_raises() -> None:
    with pytest.raises(decimal.Inexact):
        decode_value({"N": "1" * 39})


def test_a_malformed_number_raises() -> None:
    with pytest.raises(decimal.InvalidOperation):
        decode_value({"N": "twelve"})


def test_nested_maps_and_lists() -> None:
    av = {
        "M": {
            "list": {"L": [{"N": "1"}, {"S": "two"}, {"L": [{"NULL": True}]}, {"M": {}}]},
            "map": {"M": {"deep": {"M": {"flag": {"BOOL": True}, "set": {"SS": ["z"]}}}}},
            "": {"S": "empty name"},
        }
    }
    assert decode_value(av) == {
        "list": [Decimal(1), "two", [None], {}],
        "map": {"deep": {"flag": True, "set": {"z"}}},
        "": "empty name",
    }


def test_unknown_type_is_named() -> None:
    with pytest.raises(ValueError, match="'X'"):
        decode_value({"X": "1"})
    with pytest.raises(ValueError, match="'Q'"):
        decode_item({"a": {"M": {"b": {"Q": 1}}}})


@pytest.mark.parametrize("av", [{}, {"S": "a", "N": "1"}])
def test_a_value_needs_exactly_one_tag(av: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="exactly one type tag"):
        decode_value(av)


def test_decode_item_with_binary_key() -> None:
    keys = {"pk": {"B": b64(b"\x01\x02")}, "sk": {"N": "7"}}
    assert decode_item(keys) == {"pk": b"\x01\x02", "sk": Decimal(7)}


# --- round trip against boto3's serializer ------------------------------------------

numbers = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: len(d.as_tuple().digits) <= 38 and -130 <= d.adjusted() <= 125
)
scalars = st.one_of(
    st.text(),
    numbers,
    st.binary(),
    st.booleans(),
    st.none(),
    st.frozensets(st.text(), min_size=1).map(set),
    st.frozensets(numbers, min_size=1).map(set),
    st.frozensets(st.binary(), min_size=1).map(set),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def to_wire(av: Any) -> Any:
    """boto3 leaves binary values as bytes; on the wire they are base64 strings."""
    if isinstance(av, bytes | Binary):
        return b64(bytes(av))
    if isinstance(av, dict):
        return {k: to_wire(v) for k, v in av.items()}
    if isinstance(av, list | set):
        return [to_wire(v) for v in av]
    return av


@given(st.dictionaries(st.text(), values, max_size=6))
def test_round_trip_against_boto3_serializer(item: dict[str, Any]) -> None:
    serializer = TypeSerializer()
    wire = orjson.loads(
        orjson.dumps({k: to_wire(serializer.serialize(v)) for k, v in item.items()})
    )
    assert decode_item(wire) == item
    assert decode_item_json(orjson.dumps(wire)) == item


@given(numbers)
def test_json_fast_path_keeps_numbers_exact(number: Decimal) -> None:
    text = orjson.dumps({"n": TypeSerializer().serialize(number)})
    assert decode_item_json(text)["n"].as_tuple() == number.as_tuple()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"a": {"X": "1"}}', "unknown field `X`"),
        (b'{"a": {}}', "exactly one type tag"),
        (b'{"a": {"N": "twelve"}}', "Invalid decimal"),
        (b'{"a": {"B": "!!"}}', "Invalid base64"),
        (b'{"a": {"M": {"b": {"Q": 1}}}}', "unknown field `Q`"),
        (b"[1]", "Expected `object`"),
    ],
)
def test_json_fast_path_rejects_what_is_not_an_item(text: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_item_json(text)


@given(numbers)
def test_numbers_round_trip_exactly(number: Decimal) -> None:
    wire = TypeSerializer().serialize(number)
    decoded = decode_value(wire)
    assert decoded == number
    assert decoded.as_tuple() == number.as_tuple()


# --- StreamRecord ---------------------------------------------------------------------


def wire_record(**dynamodb: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": 1_700_000_000.5,
        "Keys": {"pk": {"S": "user#1"}},
        "SequenceNumber": "111000000000000000001",
        "SizeBytes": 59,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    body.update(dynamodb)
    return {
        "eventID": "e1",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": body,
    }


def test_stream_record_fields() -> None:
    raw = wire_record(
        NewImage={"pk": {"S": "user#1"}, "n": {"N": "2"}},
        OldImage={"pk": {"S": "user#1"}, "n": {"N": "1"}},
    )
    record = StreamRecord(raw, "shardId-1")
    assert record.raw == raw
    assert orjson.loads(record.raw_json) == raw
    assert record.shard_id == "shardId-1"
    assert record.event_id == "e1"
    assert record.event_name == "MODIFY"
    assert record.sequence_number == "111000000000000000001"
    assert record.keys == {"pk": "user#1"}
    assert record.new_image == {"pk": "user#1", "n": Decimal(2)}
    assert record.old_image == {"pk": "user#1", "n": Decimal(1)}
    assert record.approximate_creation_time == datetime(2023, 11, 14, 22, 13, 20, 500000, UTC)
    assert record.size_bytes == 59
    assert record.stream_view_type == "NEW_AND_OLD_IMAGES"
    assert record.user_identity is None
    assert repr(record) == "StreamRecord(MODIFY shard=shardId-1 seq=111000000000000000001)"


def test_integer_creation_time_and_ttl_identity() -> None:
    raw = wire_record(ApproximateCreationDateTime=1_700_000_000)
    raw["eventName"] = "REMOVE"
    raw["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    record = StreamRecord(raw, "s")
    assert record.approximate_creation_time == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert record.user_identity == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def test_keys_only_record_has_no_images() -> None:
    record = StreamRecord(wire_record(StreamViewType="KEYS_ONLY"), "s")
    assert record.new_image is None
    assert record.old_image is None
    assert record.stream_view_type == "KEYS_ONLY"


def test_images_are_decoded_once_and_cached() -> None:
    record = StreamRecord(wire_record(NewImage={"m": {"M": {"a": {"L": []}}}}), "s")
    first = record.new_image
    assert first is record.new_image
    assert record.keys is record.keys


def test_decoding_is_lazy() -> None:
    record = StreamRecord(wire_record(NewImage={"bad": {"??": 1}}), "s")
    assert record.event_name == "MODIFY"  # nothing decoded yet, so no error
    with pytest.raises(ValueError, match=r"\?\?"):
        _ = record.new_image


def test_stream_record_has_slots() -> None:
    record = StreamRecord(wire_record(), "s")
    with pytest.raises(AttributeError):
        record.extra = 1  # type: ignore[attr-defined]
