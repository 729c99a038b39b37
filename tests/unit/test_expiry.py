from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shardline.leases.expiry import ExpiryTracker
from shardline.leases.model import Lease


def test_unowned_lease_is_expired_at_once() -> None:
    tracker = ExpiryTracker(10.0)
    tracker.observe([Lease(key="a")], now=100.0)
    assert tracker.is_expired("a", 100.0)


def test_owned_lease_first_seen_gets_a_full_failover_period() -> None:
    tracker = ExpiryTracker(10.0)
    tracker.observe([Lease(key="a", owner="w", counter=5)], now=100.0)
    assert not tracker.is_expired("a", 109.9)
    assert tracker.is_expired("a", 110.1)


def test_counter_change_resets_the_clock() -> None:
    tracker = ExpiryTracker(10.0)
    tracker.observe([Lease(key="a", owner="w", counter=5)], now=100.0)
    tracker.observe([Lease(key="a", owner="w", counter=6)], now=108.0)
    assert not tracker.is_expired("a", 117.0)
    tracker.observe([Lease(key="a", owner="w", counter=6)], now=117.0)
    assert tracker.is_expired("a", 118.5)


def test_released_lease_is_expired_even_though_its_counter_moved() -> None:
    tracker = ExpiryTracker(10.0)
    tracker.observe([Lease(key="a", owner="w", counter=5)], now=100.0)
    tracker.observe([Lease(key="a", owner=None, counter=6)], now=101.0)
    assert tracker.is_expired("a", 101.0)


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=30))
def test_a_lease_whose_counter_keeps_moving_never_expires(steps: list[int]) -> None:
    tracker = ExpiryTracker(10.0)
    now = 0.0
    for counter, step in enumerate(steps, start=1):
        now += step  # scans at most 3 s apart, counter moving every scan
        tracker.observe([Lease(key="a", owner="w", counter=counter)], now=now)
        assert not tracker.is_expired("a", now)
