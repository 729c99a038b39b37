"""The lease-scan pace: fast while something is due, quiet otherwise, bounded by the
failover targets (docs/leases.md, "How often the table is scanned")."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardline.config import ConsumerConfig
from shardline.leases.balance import LeaseState, plan_takes
from shardline.leases.coordinator import CoordinatorSettings, LeaseCoordinator
from shardline.leases.model import Lease
from shardline.leases.scan_pace import (
    QUIET_CAP,
    ScanObservation,
    ScanPace,
    default_pace,
    fixed_pace,
    is_unbalanced,
    next_scan_interval,
    observe_scan,
)
from shardline.leases.table import LeaseTable

FAST, QUIET = 1.0, 1.5
PACE = ScanPace(FAST, QUIET)
EXPIRING_AFTER = 5.3


def owned(owner: str, n: int, *, finished: bool = False) -> list[LeaseState]:
    return [LeaseState(f"{owner}-{i}", owner, False, finished) for i in range(n)]


def observe(
    leases: list[LeaseState],
    me: str = "me",
    *,
    still_for: dict[str, float] | None = None,
    handoff_pending: bool = False,
    would_take: bool = False,
    same_owners: bool = True,
) -> ScanObservation:
    previous = {lease.key: lease.owner for lease in leases} if same_owners else None
    return observe_scan(
        leases,
        me,
        still_for={lease.key: 1.0 for lease in leases} | (still_for or {}),
        expiring_after=EXPIRING_AFTER,
        handoff_pending=handoff_pending,
        would_take=would_take,
        previous_owners=previous,
    )


# --- the interval ---------------------------------------------------------------------


observations = st.builds(
    ScanObservation,
    unowned=st.booleans(),
    expiring=st.booleans(),
    handoff_pending=st.booleans(),
    unbalanced=st.booleans(),
    changed=st.booleans(),
)


@given(observations)
def test_quiet_interval_only_when_nothing_is_due(observation: ScanObservation) -> None:
    interval = next_scan_interval(observation, PACE)
    assert interval == (QUIET if observation.quiet else FAST)
    assert observation.quiet == (observation.reasons == ())


@given(st.floats(min_value=1.0, max_value=600.0), st.floats(min_value=0.1, max_value=1.0))
def test_default_pace_keeps_both_failover_bounds(failover: float, fast: float) -> None:
    fast = min(fast, failover / 4)
    pace = default_pace(failover, fast)
    assert pace.fast == fast <= pace.quiet
    # a release is seen within the quiet interval (SIGTERM <= 2 s with ~0.3 s to spare) ...
    assert pace.quiet <= max(QUIET_CAP, fast) <= 1.5
    # ... and an expired lease within one quiet + one fast scan (SIGKILL <= failover + 3 s)
    assert pace.quiet + pace.fast <= 2.5
    assert pace.quiet <= max(failover / 4, fast)


def test_default_pace_at_the_default_failover_time() -> None:
    config = ConsumerConfig(application="app", table="things")
    assert (config.take_interval, config.lease_scan_quiet_interval) == (1.0, 1.5)
    assert default_pace(10.0, 1.0) == ScanPace(1.0, 1.5)
    assert default_pace(2.0, 0.5) == ScanPace(0.5, 0.5)  # failover/4 is already fast


def test_lease_scan_interval_fixes_both() -> None:
    config = ConsumerConfig(application="app", table="things", lease_scan_interval=4.0)
    assert (config.take_interval, config.lease_scan_quiet_interval) == (4.0, 4.0)
    assert fixed_pace(4.0) == ScanPace(4.0, 4.0)


def test_a_pace_needs_fast_below_quiet() -> None:
    with pytest.raises(ValueError):
        ScanPace(2.0, 1.0)
    with pytest.raises(ValueError):
        ScanPace(0.0, 1.0)


# --- what a scan shows ------------------------------------------------------------------


def test_a_balanced_steady_fleet_is_quiet() -> None:
    leases = owned("me", 4) + owned("w2", 4) + owned("w3", 3) + owned("w2", 2, finished=True)
    assert observe(leases).quiet


def test_each_reason_to_scan_fast() -> None:
    steady = owned("me", 3) + owned("w2", 3)
    unowned = [*steady, LeaseState("new", None, True, False)]
    assert observe(unowned).reasons == ("unowned",)
    assert observe(unowned, would_take=True).reasons == ("unowned", "unbalanced")
    expired = [*steady[:-1], replace(steady[-1], expired=True)]
    assert "unowned" in observe(expired).reasons
    still = {lease.key: 1.0 for lease in steady} | {"w2-0": EXPIRING_AFTER + 0.1}
    assert observe(steady, still_for=still).reasons == ("expiring",)
    assert observe(steady, handoff_pending=True).reasons == ("handoff_pending",)
    assert observe(steady, would_take=True).reasons == ("unbalanced",)
    assert observe(owned("me", 1) + owned("w2", 3)).reasons == ("unbalanced",)
    assert observe(steady, same_owners=False).reasons == ("changed",)


def test_own_leases_and_finished_leases_are_never_expiring_or_unowned() -> None:
    leases = owned("me", 2) + owned("w2", 2) + [LeaseState("done", None, True, True)]
    still = {"me-0": 100.0, "done": float("inf")}
    assert observe(leases, still_for=still).quiet


def test_an_idle_worker_counts_as_a_worker() -> None:
    assert is_unbalanced(owned("w2", 2), "me")
    assert not is_unbalanced(owned("w2", 1), "me")
    assert not is_unbalanced(owned("w2", 2, finished=True), "me")


fleets = st.dictionaries(
    st.sampled_from(["me", "w1", "w2", "w3", "w4"]), st.integers(0, 12), min_size=1
)


@given(fleets, st.integers(1, 20))
def test_a_fleet_seen_as_balanced_gives_this_worker_nothing_to_take(
    counts: dict[str, int], max_leases: int
) -> None:
    """Quiet never hides work from this worker: with every lease live and the counts
    within one, its take plan is empty (so a slower scan misses no take or steal)."""
    leases = [lease for owner, n in counts.items() for lease in owned(owner, n)]
    plan = plan_takes(leases, "me", max_leases=max_leases, max_steal=10, rng=random.Random(0))
    if not is_unbalanced(leases, "me"):
        assert not plan.take and not plan.steal
    if plan.take or plan.steal:
        assert is_unbalanced(leases, "me")


# --- the coordinator uses it -------------------------------------------------------------


class StillTable:
    """A lease table whose leases only change when told to (no AWS)."""

    def __init__(self, leases: list[Lease]) -> None:
        self.leases = leases
        self.scans = 0

    async def list_leases(self) -> list[Lease]:
        self.scans += 1
        return list(self.leases)

    async def take(self, lease: Lease, owner: str) -> Lease | None:
        return None  # somebody else always wins


def coordinator(table: StillTable, clock: list[float], **changes: Any) -> LeaseCoordinator:
    async def nothing(*args: object) -> None:
        return None

    fields: dict[str, Any] = {"take_interval": 1.0, "quiet_interval": 1.5, **changes}
    settings = CoordinatorSettings(
        worker_id="me", failover_time=10.0, renew_interval=10 / 3 - 0.025, **fields
    )
    return LeaseCoordinator(
        cast(LeaseTable, table),
        settings,
        on_acquired=nothing,
        on_lost=nothing,
        clock=lambda: clock[0],
    )


async def test_an_unowned_lease_keeps_the_fast_pace() -> None:
    table = StillTable([Lease("a", owner="w1", counter=1), Lease("b", counter=1)])
    clock = [0.0]
    coord = coordinator(table, clock)
    assert coord.next_scan_in() == 1.0  # no scan yet
    for _ in range(3):
        await coord.take_round()  # the take of "b" is lost to another worker each time
        clock[0] += 1.0
        assert coord.last_observation is not None
        assert "unowned" in coord.last_observation.reasons
        assert coord.next_scan_in() == 1.0
    assert table.scans == 3


async def test_counters_still_for_too_long_bring_the_fast_pace_back() -> None:
    table = StillTable([Lease("a", owner="w1", counter=1), Lease("b", owner="w2", counter=1)])
    clock = [0.0]
    coord = coordinator(table, clock)
    await coord.take_round()  # first scan
    clock[0] = 1.0
    await coord.take_round()
    assert coord.next_scan_in() == 1.5  # 1 lease each for w1, w2, none for me: balanced
    clock[0] = 1.0 + coord.settings.expiring_after + 0.1  # no renewal seen since
    await coord.take_round()
    assert coord.last_observation is not None
    assert coord.last_observation.reasons == ("expiring",)
    assert coord.next_scan_in() == 1.0
    table.leases = [replace(lease, counter=2) for lease in table.leases]  # renewed after all
    await coord.take_round()
    assert coord.next_scan_in() == 1.5


async def test_without_a_quiet_interval_the_pace_is_fixed() -> None:
    table = StillTable([Lease("a", owner="w1", counter=1)])
    coord = coordinator(table, [0.0], quiet_interval=None)
    await coord.take_round()
    await coord.take_round()
    assert coord.last_observation is not None and coord.last_observation.quiet
    assert coord.next_scan_in() == 1.0
