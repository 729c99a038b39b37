"""Lambda filter patterns: the documented examples, operators, and properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardline.delivery.filters import FilterSet, normalize_filter_criteria
from shardline.errors import ConfigError

# The record of Lambda's "Filtering DynamoDB" page (with-ddb-filtering).
DOC_RECORD: dict[str, Any] = {
    "eventID": "1",
    "eventVersion": "1.0",
    "eventName": "INSERT",
    "dynamodb": {
        "ApproximateCreationDateTime": "1678831218.0",
        "Keys": {"CustomerName": {"S": "AnyCompany Industries"}},
        "NewImage": {
            "AccountManager": {"S": "Pat Candella"},
            "PaymentTerms": {"S": "60 days"},
            "CustomerName": {"S": "AnyCompany Industries"},
        },
        "SequenceNumber": "111",
        "SizeBytes": 26,
        "StreamViewType": "NEW_IMAGE",
    },
}


def matches(pattern: Any, record: dict[str, Any] = DOC_RECORD) -> bool:
    return FilterSet(normalize_filter_criteria(pattern)).matches(record)


def image(**attrs: Any) -> dict[str, Any]:
    return {"eventName": "MODIFY", "dynamodb": {"NewImage": attrs}}


def new(attribute: str, leaf: Any) -> dict[str, Any]:
    """A pattern on one attribute of NewImage."""
    return {"dynamodb": {"NewImage": {attribute: leaf}}}


def test_doc_example_table_key() -> None:
    criteria = {
        "Filters": [
            {
                "Pattern": json.dumps(
                    {"dynamodb": {"Keys": {"CustomerName": {"S": ["AnyCompany Industries"]}}}}
                )
            }
        ]
    }
    assert matches(criteria)
    assert not matches({"dynamodb": {"Keys": {"CustomerName": {"S": ["Other"]}}}})


def test_doc_example_new_image_attribute_and_or() -> None:
    assert matches({"dynamodb": {"NewImage": {"AccountManager": {"S": ["Pat Candella"]}}}})
    both = {
        "dynamodb": {
            "NewImage": {
                "AccountManager": {"S": ["Pat Candella"]},
                "PaymentTerms": {"S": ["30 days", "60 days"]},  # OR within a key
            }
        }
    }
    assert matches(both)
    both["dynamodb"]["NewImage"]["PaymentTerms"]["S"] = ["30 days"]  # AND across keys fails
    assert not matches(both)


def test_doc_example_ttl_deletions() -> None:
    pattern = {"userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}}
    ttl = {
        "eventName": "REMOVE",
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
    }
    assert matches(pattern, ttl)
    assert not matches(pattern, {"eventName": "REMOVE"})


def test_event_name_equals_and_anything_but() -> None:
    assert matches({"eventName": ["INSERT"]})
    assert not matches({"eventName": [{"anything-but": ["INSERT"]}]})
    assert matches({"eventName": [{"anything-but": ["REMOVE", "MODIFY"]}]})
    assert matches({"eventName": [{"anything-but": "REMOVE"}]})


@pytest.mark.parametrize(
    ("pattern", "record", "expected"),
    [
        (new("Note", {"S": [""]}), image(Note={"S": ""}), True),
        (new("Note", {"S": [""]}), image(Note={"S": "x"}), False),
        (new("City", {"S": [{"prefix": "Sea"}]}), image(City={"S": "Seattle"}), True),
        (new("City", {"S": [{"prefix": "Sea"}]}), image(City={"S": "Boston"}), False),
        (new("Qty", {"N": [{"numeric": [">", 10, "<=", 20]}]}), image(Qty={"N": "20"}), True),
        (new("Qty", {"N": [{"numeric": [">", 10, "<=", 20]}]}), image(Qty={"N": "21"}), False),
        (new("Qty", {"N": [{"numeric": ["=", 100]}]}), image(Qty={"N": "100.0"}), True),
        (new("Qty", {"N": ["101"]}), image(Qty={"N": "101"}), True),
        (new("Qty", {"N": ["101"]}), image(Qty={"N": "101.0"}), False),
        (new("Qty", [{"exists": True}]), image(Qty={"N": "1"}), True),
        (new("Qty", [{"exists": False}]), image(Qty={"N": "1"}), False),
        (new("Qty", [{"exists": False}]), image(), True),
        ({"dynamodb": {"OldImage": [{"exists": False}]}}, image(), True),
        (new("Tags", {"SS": ["red"]}), image(Tags={"SS": ["blue", "red"]}), True),
        (new("Ok", {"BOOL": [True]}), image(Ok={"BOOL": True}), True),
        (new("Ok", {"BOOL": [True]}), image(Ok={"BOOL": False}), False),
        (new("Gone", {"NULL": [True]}), image(Gone={"NULL": True}), True),
        ({"eventName": [{"equals-ignore-case": "modify"}]}, image(), True),
        ({"eventName": [{"suffix": "IFY"}]}, image(), True),
    ],
)  # fmt: skip
def test_operators(pattern: dict[str, Any], record: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, record) is expected


def test_null_matches_json_null() -> None:
    assert matches({"a": [None]}, {"a": None})
    assert not matches({"a": [None]}, {"a": "x"})
    assert not matches({"a": [None]}, {})


def test_several_filters_are_ored() -> None:
    criteria = [{"eventName": ["REMOVE"]}, {"eventName": ["INSERT"]}]
    assert matches(criteria)
    assert not matches([{"eventName": ["REMOVE"]}])


def test_no_criteria_pass_everything() -> None:
    assert FilterSet().matches({})
    assert normalize_filter_criteria(None) == ()


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        {},
        {"eventName": "INSERT"},
        {"eventName": []},
        {"eventName": [{"regex": "x"}]},
        {"n": [{"numeric": [">"]}]},
        {"n": [{"numeric": ["~", 3]}]},
        {"n": [{"prefix": 3}]},
        {"n": [{"exists": "yes"}]},
        [{"a": ["x"]}] * 11,
        {"Filters": "nope"},
        42,
    ],
)
def test_bad_patterns_are_config_errors(bad: Any) -> None:
    with pytest.raises(ConfigError):
        normalize_filter_criteria(bad)


_scalars = st.one_of(st.text(max_size=5), st.integers(-5, 5), st.booleans(), st.none())


@given(key=st.text(min_size=1, max_size=4), value=_scalars)
def test_equality_pattern_matches_its_own_value(key: str, value: Any) -> None:
    assert matches({key: [value]}, {key: value})


@given(key=st.text(min_size=1, max_size=4), value=_scalars, other=_scalars)
def test_anything_but_is_the_negation_of_equals(key: str, value: Any, other: Any) -> None:
    record = {key: other}
    assert matches({key: [{"anything-but": [value]}]}, record) is not matches(
        {key: [value]}, record
    )


@given(n=st.integers(-1000, 1000), low=st.integers(-1000, 1000), high=st.integers(-1000, 1000))
def test_numeric_range_agrees_with_python(n: int, low: int, high: int) -> None:
    pattern = {"v": {"N": [{"numeric": [">=", low, "<", high]}]}}
    assert matches(pattern, {"v": {"N": str(n)}}) is (low <= n < high)


@given(st.lists(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]), min_size=1, max_size=3))
def test_or_of_filters_is_any(names: list[str]) -> None:
    criteria = [{"eventName": [n]} for n in names]
    for event in ("INSERT", "MODIFY", "REMOVE"):
        assert matches(criteria, {"eventName": event}) is (event in names)


def test_ttl_filter_matches_a_wire_record_from_get_records() -> None:
    from shardline.delivery.filters import FilterSet
    from shardline.lambda_compat import lambda_record

    wire = {
        "eventID": "1",
        "eventName": "REMOVE",
        "dynamodb": {"Keys": {"pk": {"S": "k"}}, "SequenceNumber": "1" * 21},
        "userIdentity": {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"},
    }
    pattern = {"userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}}
    filters = FilterSet([json.dumps(pattern)])
    assert filters.matches(lambda_record(wire, "arn:aws:dynamodb:us-east-1:1:table/t/stream/x"))
