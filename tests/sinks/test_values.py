"""DynamoDB-typed JSON to plain JSON: every digit kept, sets sorted, same values as boto3."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer
from hypothesis import given, settings
from hypothesis import strategies as st

from shardline.sinks.values import (
    dumps_document,
    json_number,
    plain_item,
    plain_item_json,
    plain_value,
    typed_value,
)

# --- strategies: typed attribute values as the stream's JSON carries them --------------------

_digits = st.integers(min_value=0, max_value=10**38 - 1)
_numbers = st.builds(
    lambda sign, digits, exponent: str(Decimal(f"{sign}{digits}E{exponent}")),
    st.sampled_from(["", "-"]),
    _digits,
    st.integers(min_value=-120, max_value=87),  # DynamoDB: |n| < 1E+126
)
_text = st.text(max_size=12)
_blobs = st.binary(min_size=1, max_size=12).map(lambda b: base64.b64encode(b).decode())
_scalars = st.one_of(
    _text.map(lambda s: {"S": s}),
    _numbers.map(lambda n: {"N": n}),
    _blobs.map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.sets(_text, min_size=1, max_size=5).map(lambda s: {"SS": list(s)}),
    st.lists(_numbers, min_size=1, max_size=5, unique_by=Decimal).map(lambda n: {"NS": n}),
    st.sets(st.binary(min_size=1, max_size=6), min_size=1, max_size=5).map(
        lambda s: {"BS": [base64.b64encode(b).decode() for b in s]}
    ),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda v: {"L": v}),
        st.dictionaries(_text, inner, max_size=4).map(lambda v: {"M": v}),
    ),
    max_leaves=12,
)
_items = st.dictionaries(st.text(min_size=1, max_size=8), _values, max_size=6)


def _boto3_value(av: dict[str, Any]) -> Any:
    """What boto3's TypeDeserializer makes of a value, in the plain form's terms."""
    tag, value = next(iter(av.items()))
    if tag in ("B", "BS"):  # boto3 wants bytes for binary
        av = {tag: base64.b64decode(value) if tag == "B" else [base64.b64decode(v) for v in value]}
    elif tag in ("M", "L"):
        pass
    return _comparable(TypeDeserializer().deserialize(_bytes_inside(av)))


def _bytes_inside(av: dict[str, Any]) -> dict[str, Any]:
    tag, value = next(iter(av.items()))
    if tag == "B" and isinstance(value, str):
        return {"B": base64.b64decode(value)}
    if tag == "BS" and value and isinstance(value[0], str):
        return {"BS": [base64.b64decode(v) for v in value]}
    if tag == "M":
        return {"M": {k: _bytes_inside(v) for k, v in value.items()}}
    if tag == "L":
        return {"L": [_bytes_inside(v) for v in value]}
    return av


def _comparable(value: Any) -> Any:
    """boto3's values as plain JSON would hold them: sets sorted, bytes as base64."""
    if isinstance(value, Binary):
        return base64.b64encode(value.value).decode()
    if isinstance(value, set):
        members = [_comparable(v) for v in value]
        if members and isinstance(next(iter(value)), Binary):
            return sorted(members, key=base64.b64decode)
        return sorted(members)
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _parsed(document: bytes) -> Any:
    return json.loads(document, parse_float=Decimal, parse_int=Decimal)


def _numbers_in(av: dict[str, Any]) -> list[str]:
    tag, value = next(iter(av.items()))
    if tag == "N":
        return [value]
    if tag == "NS":
        return list(value)
    if tag == "M":
        return [n for v in value.values() for n in _numbers_in(v)]
    if tag == "L":
        return [n for v in value for n in _numbers_in(v)]
    return []


@settings(max_examples=200, deadline=None)
@given(_items)
def test_plain_json_has_the_values_boto3_reads(item: dict[str, Any]) -> None:
    document = plain_item_json(orjson.dumps(item))
    expected = {name: _boto3_value(av) for name, av in item.items()}
    assert _parsed(document) == expected
    assert plain_item_json(item) == document  # parsed or as text, the same bytes


@settings(max_examples=200, deadline=None)
@given(_items)
def test_plain_json_keeps_every_digit(item: dict[str, Any]) -> None:
    text = plain_item_json(item).decode()
    for number in (n for av in item.values() for n in _numbers_in(av)):
        assert json_number(number) in text
        assert Decimal(json_number(number)) == Decimal(number)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.50", "12.50"),
        ("0", "0"),
        ("-0", "-0"),
        ("1E+5", "1e+5"),
        ("1e400", "1e400"),
        ("12345678901234567890.123456789", "12345678901234567890.123456789"),
        ("007", "7"),
        (".5", "0.5"),
        ("-.25", "-0.25"),
        ("5.", "5"),
        ("+3", "3"),
        ("1.50E+40", "1.50e+40"),
        ("1E-130", "1e-130"),
        ("9.9999999999999999999999999999999999999E+125",
         "9.9999999999999999999999999999999999999e+125"),
    ],
)  # fmt: skip
def test_json_number_is_valid_json_with_the_same_digits(text: str, expected: str) -> None:
    result = json_number(text)
    assert result == expected or Decimal(result) == Decimal(expected)
    assert json.loads(result, parse_float=Decimal, parse_int=Decimal) == Decimal(text)


@pytest.mark.parametrize("text", ["", "abc", "NaN", "Infinity", "-inf", "1e", "1..2", "0x10"])
def test_json_number_refuses_what_is_no_number(text: str) -> None:
    with pytest.raises(ValueError, match="not a DynamoDB number"):
        json_number(text)


def test_sets_are_sorted_by_value() -> None:
    item = {
        "ss": {"SS": ["b", "a", "c"]},
        "ns": {"NS": ["10", "9", "-1.5", "1e2"]},
        "bs": {"BS": [base64.b64encode(b).decode() for b in (b"\x02", b"\x01\xff", b"\x01")]},
    }
    plain = _parsed(orjson.dumps(plain_item(item)))
    assert plain["ss"] == ["a", "b", "c"]
    assert plain["ns"] == [Decimal("-1.5"), Decimal("9"), Decimal("10"), Decimal("100")]
    assert [base64.b64decode(b) for b in plain["bs"]] == [b"\x01", b"\x01\xff", b"\x02"]


def test_plain_value_refuses_a_value_with_no_or_two_tags() -> None:
    with pytest.raises(ValueError):
        plain_value({})
    with pytest.raises(ValueError):
        plain_value({"S": "a", "N": "1"})
    with pytest.raises(ValueError, match="unknown"):
        plain_value({"X": "a"})


# --- typed_value and dumps_document --------------------------------------------------------------

_python_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        _text,
        st.integers(min_value=-(10**30), max_value=10**30),
        _numbers.map(Decimal),
        st.binary(min_size=1, max_size=8),
        st.frozensets(_text, min_size=1, max_size=4),
        st.frozensets(st.integers(-1000, 1000), min_size=1, max_size=4),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=8,
)


def _deserialized(value: Any) -> Any:
    """boto3's reading of a typed value, with binary as bytes and sets as frozensets."""
    result = TypeDeserializer().deserialize(_bytes_inside(value))
    return _pythonic(result)


def _pythonic(value: Any) -> Any:
    if isinstance(value, Binary):
        return value.value
    if isinstance(value, set):
        return frozenset(_pythonic(v) for v in value)
    if isinstance(value, dict):
        return {k: _pythonic(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pythonic(v) for v in value]
    return value


@settings(max_examples=200, deadline=None)
@given(_python_values)
def test_typed_value_round_trips_through_boto3(value: Any) -> None:
    assert _deserialized(typed_value(value)) == value


@settings(max_examples=100, deadline=None)
@given(_python_values)
def test_dumps_document_equals_plain_json_of_the_typed_value(value: Any) -> None:
    document = {"v": value}
    assert _parsed(dumps_document(document)) == _parsed(plain_item_json({"v": typed_value(value)}))


def test_typed_value_of_floats_keeps_the_shortest_digits() -> None:
    assert typed_value(0.1) == {"N": "0.1"}
    assert Decimal(typed_value(1e100)["N"]) == Decimal("1e100")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), Decimal("NaN"), Decimal("-Infinity")])
def test_typed_value_refuses_numbers_dynamodb_cannot_hold(bad: Any) -> None:
    with pytest.raises(TypeError):
        typed_value(bad)


def test_typed_value_refuses_mixed_sets_and_unknown_types() -> None:
    with pytest.raises(TypeError):
        typed_value({"a", 1})
    with pytest.raises(TypeError):
        typed_value(object())


def test_dumps_document_writes_decimals_bytes_and_sets() -> None:
    # 3: a key that is not a string, as a transform may return
    document: dict[Any, Any] = {
        "price": Decimal("12.50"), "blob": b"\x00\x01", "tags": {"b", "a"}, 3: "three"
    }  # fmt: skip
    assert orjson.loads(dumps_document(document)) == {
        "price": 12.5, "blob": "AAE=", "tags": ["a", "b"], "3": "three"
    }  # fmt: skip
    assert b'"price":12.50' in dumps_document(document)
    with pytest.raises(TypeError):
        dumps_document({"x": Decimal("NaN")})
    with pytest.raises(TypeError):
        dumps_document({"x": object()})


def test_dumps_document_keeps_every_digit_of_big_integers() -> None:
    big = 2**70 + 1
    assert dumps_document({"n": big}) == f'{{"n":{big}}}'.encode()
