"""KCL checkpoint ordering and checkpoint validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardline.errors import CheckpointValueError
from shardline.leases.model import AT_TIMESTAMP, LATEST, SHARD_END, TRIM_HORIZON
from shardline.sequence import is_sequence_number, sort_key, validate_checkpoint

ORDER = [
    AT_TIMESTAMP,
    TRIM_HORIZON,
    LATEST,
    "0",
    "9",
    "10",
    "00011",
    "123456789012345678901234567890",
    SHARD_END,
]


def test_documented_order() -> None:
    keys = [sort_key(v) for v in ORDER]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert sort_key("7", 0) < sort_key("7", 1) < sort_key("8", 0)
    assert sort_key(SHARD_END, 0) < sort_key(SHARD_END, 1)


@pytest.mark.parametrize("bad", ["", "12a", "-1", "1.5", " 1", "shard_end", "١٢", "²"])
def test_sort_key_rejects_anything_else(bad: str) -> None:
    with pytest.raises(CheckpointValueError):
        sort_key(bad)


def test_is_sequence_number() -> None:
    assert is_sequence_number("000123")
    assert not is_sequence_number("")
    assert not is_sequence_number(TRIM_HORIZON)


digits = st.integers(min_value=0, max_value=10**40).map(str) | st.from_regex(r"\A0*[0-9]{1,30}\Z")
values = st.sampled_from([AT_TIMESTAMP, TRIM_HORIZON, LATEST, SHARD_END]) | digits
subs = st.integers(min_value=0, max_value=5)


@given(digits, digits, subs, subs)
def test_digit_strings_order_by_integer_value(a: str, b: str, sa: int, sb: int) -> None:
    assert (sort_key(a, sa) < sort_key(b, sb)) == ((int(a), sa) < (int(b), sb))
    assert (sort_key(a, sa) == sort_key(b, sb)) == ((int(a), sa) == (int(b), sb))


@given(values, values, values, subs, subs, subs)
def test_total_order(a: str, b: str, c: str, sa: int, sb: int, sc: int) -> None:
    ka, kb, kc = sort_key(a, sa), sort_key(b, sb), sort_key(c, sc)
    assert (ka < kb) + (ka == kb) + (ka > kb) == 1  # trichotomy
    if ka <= kb and kb <= kc:
        assert ka <= kc  # transitivity
    if ka <= kb and kb <= ka:
        assert (a == b or int(a) == int(b)) and sa == sb  # antisymmetry up to equal values


@given(values, subs)
def test_sentinels_bracket_every_sequence_number(value: str, sub: int) -> None:
    if is_sequence_number(value):
        assert sort_key(LATEST, 99) < sort_key(value, sub) < sort_key(SHARD_END, 0)


# --- validate_checkpoint ---------------------------------------------------------------


def check(new: str, new_sub: int = 0, *, last: str = "100", largest: str = "200") -> None:
    validate_checkpoint(
        new, new_sub, last=last, last_sub=0, largest_permitted=largest, largest_sub=0
    )


@pytest.mark.parametrize("new", ["100", "150", "200", "0150"])
def test_inside_the_range_is_accepted(new: str) -> None:
    check(new)


def test_from_an_initial_sentinel() -> None:
    check("5", last=TRIM_HORIZON, largest="5")
    check("5", last=LATEST, largest="9")


def test_shard_end_once_permitted() -> None:
    check(SHARD_END, last="100", largest=SHARD_END)
    with pytest.raises(CheckpointValueError, match="acceptable range"):
        check(SHARD_END, last="100", largest="200")


@pytest.mark.parametrize("new", ["99", "201", "1000"])
def test_outside_the_range_is_refused(new: str) -> None:
    with pytest.raises(CheckpointValueError, match="did not fall into acceptable range"):
        check(new)


@pytest.mark.parametrize("new", [TRIM_HORIZON, LATEST, AT_TIMESTAMP, "abc", "", "1e5"])
def test_only_digits_or_shard_end(new: str) -> None:
    with pytest.raises(CheckpointValueError):
        check(new, last=AT_TIMESTAMP, largest=SHARD_END)


def test_negative_sub_sequence_number() -> None:
    with pytest.raises(CheckpointValueError, match="negative"):
        check("150", -1)


def test_sub_sequence_breaks_ties_at_the_edges() -> None:
    validate_checkpoint("200", 1, last="100", last_sub=0, largest_permitted="200", largest_sub=1)
    with pytest.raises(CheckpointValueError):
        validate_checkpoint(
            "200", 2, last="100", last_sub=0, largest_permitted="200", largest_sub=1
        )
    with pytest.raises(CheckpointValueError):
        validate_checkpoint(
            "100", 0, last="100", last_sub=1, largest_permitted="200", largest_sub=0
        )


def test_malformed_bounds_raise_too() -> None:
    with pytest.raises(CheckpointValueError):
        check("150", last="garbage")


def test_checkpoint_value_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        check("99")


@given(digits, digits, digits)
def test_accepts_exactly_the_closed_interval(new: str, last: str, largest: str) -> None:
    inside = int(last) <= int(new) <= int(largest)
    try:
        check(new, last=last, largest=largest)
    except CheckpointValueError:
        assert not inside
    else:
        assert inside
