"""Fault rules of the local stack: parsing, matching, rates and bursts (pure)."""

from __future__ import annotations

import random

import pytest

from shardline.local.faults import (
    STREAMS_OPERATIONS,
    WRITE_OPERATIONS,
    FaultRule,
    Faults,
)


def test_parse_a_spec_with_every_option() -> None:
    rule = FaultRule.parse("race:ops=UpdateItem,PutItem:rate=0.5:count=3:table=leases:applied=1")
    assert rule == FaultRule("race", frozenset({"UpdateItem", "PutItem"}), 0.5, 3, "leases", True)
    assert FaultRule.from_dict(rule.to_dict()) == rule


def test_operation_groups_expand() -> None:
    assert FaultRule.parse("throttle:ops=streams").operations == STREAMS_OPERATIONS
    assert FaultRule.parse("error:ops=writes,GetItem").operations == WRITE_OPERATIONS | {"GetItem"}


@pytest.mark.parametrize(
    "spec",
    ["explode", "throttle:rate=2", "throttle:count=0", "throttle:applied=1", "empty:applied=1",
     "throttle:bogus=1", "throttle:rate"],
)  # fmt: skip
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        FaultRule.parse(spec)


def test_from_dict_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown fault fields"):
        FaultRule.from_dict({"kind": "drop", "often": True})


def test_matching_by_operation_table_and_condition() -> None:
    race = FaultRule.parse("race:table=leases")
    assert race.matches("UpdateItem", {"leases"}, conditional=True)
    assert not race.matches("UpdateItem", {"leases"}, conditional=False)
    assert not race.matches("UpdateItem", {"other"}, conditional=True)
    empty = FaultRule.parse("empty")
    assert empty.matches("GetRecords", (), conditional=False)
    assert not empty.matches("DescribeStream", (), conditional=False)
    throttle = FaultRule.parse("throttle:ops=GetRecords")
    assert not throttle.matches("GetShardIterator", (), conditional=False)


def test_a_burst_fires_count_times_then_is_removed() -> None:
    faults = Faults()
    faults.throttle("GetRecords", count=3)
    fired = [faults.pick("GetRecords") is not None for _ in range(5)]
    assert fired == [True, True, True, False, False]
    assert faults.rules() == {} and faults.fired["throttle"] == 3


def test_a_rate_fires_about_that_often() -> None:
    faults = Faults(random.Random(3))
    faults.server_error(rate=0.25)
    fired = sum(faults.pick("GetRecords") is not None for _ in range(2000))
    assert 400 < fired < 600


def test_pick_filters_kinds_and_remove_and_clear() -> None:
    faults = Faults()
    empty = faults.empty_pages()
    drop = faults.drop_connection("GetRecords")
    assert faults.pick("GetRecords", kinds=("empty",)) == FaultRule.parse("empty:ops=GetRecords")
    assert faults.pick("GetRecords", kinds=("drop",)).kind == "drop"  # type: ignore[union-attr]
    faults.remove(drop)
    faults.remove(drop)  # already gone: no error
    assert list(faults.rules()) == [empty]
    faults.add("race:ops=UpdateItem")
    faults.clear()
    assert faults.rules() == {}
