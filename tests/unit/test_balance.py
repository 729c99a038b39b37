"""Lease taking and stealing: targets, hysteresis, convergence and stability."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from shardline.leases.balance import LeaseState, TakePlan, plan_takes

BIG = 10**6


def state(
    key: str, owner: str | None, *, expired: bool = False, finished: bool = False
) -> LeaseState:
    return LeaseState(key, owner, expired, finished)


def plan(
    leases: list[LeaseState], me: str = "me", *, max_leases: int = BIG, max_steal: int = BIG
) -> TakePlan:
    return plan_takes(leases, me, max_leases=max_leases, max_steal=max_steal, rng=random.Random(0))


def owned(owner: str, n: int, prefix: str = "") -> list[LeaseState]:
    return [state(f"{prefix or owner}-{i}", owner) for i in range(n)]


# --- examples ---------------------------------------------------------------------------


def test_nothing_to_do_on_an_empty_table() -> None:
    assert plan([]) == TakePlan()


def test_a_lone_worker_takes_everything_unowned() -> None:
    leases = [state(f"l{i}", None, expired=True) for i in range(5)]
    result = plan(leases)
    assert sorted(result.take) == [f"l{i}" for i in range(5)]
    assert result.steal == ()


def test_takes_expired_up_to_target_in_random_order() -> None:
    leases = [*owned("a", 2), *[state(f"x{i}", "dead", expired=True) for i in range(6)]]
    # workers: a, me (dead is expired) -> target ceil(8 / 2) = 4
    result = plan(leases)
    assert len(result.take) == 4
    assert set(result.take) <= {f"x{i}" for i in range(6)}
    other = plan_takes(leases, "me", max_leases=BIG, max_steal=BIG, rng=random.Random(1))
    assert len(other.take) == 4


def test_max_leases_caps_the_target() -> None:
    leases = [state(f"x{i}", None, expired=True) for i in range(10)]
    assert len(plan(leases, max_leases=3).take) == 3
    assert plan([*owned("me", 3), *leases], max_leases=3) == TakePlan()


def test_a_restarted_worker_retakes_its_own_expired_leases() -> None:
    leases = [
        state("mine-0", "me", expired=True),
        state("mine-1", "me", expired=True),
        *owned("a", 2),
    ]
    assert sorted(plan(leases).take) == ["mine-0", "mine-1"]


def test_never_plans_a_lease_it_holds() -> None:
    leases = [*owned("me", 1), state("free", None, expired=True)]
    assert plan(leases).take == ("free",)


def test_finished_leases_are_not_balanced_but_their_owners_count() -> None:
    finished = [state(f"f{i}", None, expired=True, finished=True) for i in range(4)]
    assert plan(finished) == TakePlan()
    # "b" holds only a finished lease: still a worker, so target = ceil(4 / 3) = 2.
    leases = [*owned("a", 4), state("done", "b", finished=True)]
    assert len(plan(leases).steal) == 2


def test_steal_when_nothing_is_expired() -> None:
    result = plan(owned("a", 6))
    assert len(result.steal) == 3
    assert result.take == ()
    assert all(key.startswith("a-") for key in result.steal)


def test_max_steal_limits_one_round() -> None:
    assert len(plan(owned("a", 6), max_steal=1).steal) == 1


def test_no_steal_while_expired_leases_wait() -> None:
    leases = [*owned("a", 6), state("free", None, expired=True)]
    assert plan(leases) == TakePlan(take=("free",))


def test_steals_evenly_from_the_most_loaded() -> None:
    leases = [*owned("a", 5), *owned("b", 5), *owned("c", 2)]
    # 4 workers, 12 leases: target 3, I need 3; a and b each give, neither gives 3.
    result = plan(leases)
    assert len(result.steal) == 3
    by_owner = Counter(key.split("-")[0] for key in result.steal)
    assert set(by_owner) == {"a", "b"}


def test_a_difference_of_one_never_moves_a_lease() -> None:
    # 3 workers, 5 leases: target 2; I hold 1, the others 2: no steal (2 < 1 + 2).
    assert plan([*owned("me", 1), *owned("a", 2), *owned("b", 2)]) == TakePlan()
    # 2 workers, 3 leases: 2 vs 1 is as good as it gets.
    assert plan([*owned("me", 1), *owned("a", 2)]) == TakePlan()


def test_steals_from_a_worker_at_target_when_the_gap_is_two() -> None:
    # 3 workers, 7 leases: target 3; 3/3/1 must still even out to 3/2/2.
    result = plan([*owned("me", 1), *owned("a", 3), *owned("b", 3)])
    assert len(result.steal) == 1


def test_expired_leases_of_others_do_not_count_as_theirs() -> None:
    leases = [*owned("a", 2), *[state(f"d{i}", "dead", expired=True) for i in range(2)]]
    # workers: a, me -> target 2; the dead worker's leases are free.
    assert sorted(plan(leases).take) == ["d0", "d1"]


# --- properties: a fleet running take rounds ----------------------------------------------------


def run_round(
    table: dict[str, str | None],
    workers: list[str],
    max_leases: int,
    max_steal: int,
    rng: random.Random,
) -> int:
    """Each worker in turn plans on the current table and applies its plan. Returns moves."""
    moves = 0
    for me in workers:
        view = [state(key, owner, expired=owner is None) for key, owner in sorted(table.items())]
        result = plan_takes(view, me, max_leases=max_leases, max_steal=max_steal, rng=rng)
        mine_before = sum(1 for owner in table.values() if owner == me)
        for key in result.take:
            assert table[key] is None
        for key in result.steal:
            assert table[key] not in (None, me)
        assert not set(result.take) & set(result.steal)
        assert len(result.steal) <= max_steal
        assert mine_before + len(result.take) + len(result.steal) <= max(max_leases, mine_before)
        for key in (*result.take, *result.steal):
            table[key] = me
        moves += len(result.take) + len(result.steal)
    return moves


def spread(table: dict[str, str | None], workers: list[str]) -> int:
    counts = Counter(owner for owner in table.values() if owner is not None)
    loads = [counts[w] for w in workers]
    return max(loads) - min(loads)


@settings(max_examples=300, deadline=None)
@given(
    n_workers=st.integers(2, 6),
    n_leases=st.integers(0, 60),
    max_steal=st.integers(1, 5),
    seed=st.integers(0, 2**32),
)
def test_rounds_converge_to_an_even_spread_and_stay_there(
    n_workers: int, n_leases: int, max_steal: int, seed: int
) -> None:
    rng = random.Random(seed)
    workers = [f"w{i}" for i in range(n_workers)]
    rng.shuffle(workers)
    table: dict[str, str | None] = {f"lease-{i:02d}": None for i in range(n_leases)}
    bound = n_leases + 10
    for _round in range(bound):
        run_round(table, workers, BIG, max_steal, rng)
        if None not in table.values() and spread(table, workers) <= 1:
            break
    else:
        raise AssertionError(f"no even spread after {bound} rounds: {Counter(table.values())}")
    for _round in range(3):
        assert run_round(table, workers, BIG, max_steal, rng) == 0, "a stable fleet moved leases"


@settings(max_examples=200, deadline=None)
@given(
    n_workers=st.integers(2, 6),
    n_leases=st.integers(0, 60),
    max_leases=st.integers(1, 12),
    max_steal=st.integers(1, 5),
    seed=st.integers(0, 2**32),
)
def test_max_leases_is_never_exceeded(
    n_workers: int, n_leases: int, max_leases: int, max_steal: int, seed: int
) -> None:
    rng = random.Random(seed)
    workers = [f"w{i}" for i in range(n_workers)]
    table: dict[str, str | None] = {f"lease-{i:02d}": None for i in range(n_leases)}
    for _round in range(n_leases + 10):
        run_round(table, workers, max_leases, max_steal, rng)
        counts = Counter(owner for owner in table.values() if owner is not None)
        assert max(counts.values(), default=0) <= max_leases
    held = sum(1 for owner in table.values() if owner is not None)
    assert held == min(n_leases, n_workers * max_leases)  # no capacity left unused


@settings(max_examples=200, deadline=None)
@given(
    n_workers=st.integers(2, 6),
    n_leases=st.integers(1, 40),
    seed=st.integers(0, 2**32),
)
def test_a_dead_workers_leases_are_spread_over_the_survivors(
    n_workers: int, n_leases: int, seed: int
) -> None:
    rng = random.Random(seed)
    workers = [f"w{i}" for i in range(n_workers)]
    table: dict[str, str | None] = {
        f"lease-{i:02d}": workers[i % n_workers] for i in range(n_leases)
    }
    dead, survivors = workers[0], workers[1:]
    table = {key: None if owner == dead else owner for key, owner in table.items()}
    for _round in range(n_leases + 10):
        run_round(table, survivors, BIG, 1, rng)
        if None not in table.values() and spread(table, survivors) <= 1:
            break
    else:
        raise AssertionError("survivors never evened out")


@given(
    leases=st.lists(
        st.builds(
            LeaseState,
            key=st.text(min_size=1, max_size=3),
            owner=st.sampled_from([None, "me", "a", "b", "c"]),
            expired=st.booleans(),
            finished=st.booleans(),
        ),
        unique_by=lambda lease: lease.key,
        max_size=30,
    ),
    max_leases=st.integers(1, 20),
    max_steal=st.integers(1, 5),
)
def test_a_plan_is_always_well_formed(
    leases: list[LeaseState], max_leases: int, max_steal: int
) -> None:
    result = plan(leases, max_leases=max_leases, max_steal=max_steal)
    by_key = {lease.key: lease for lease in leases}
    assert not (result.take and result.steal)
    assert len(set(result.take)) == len(result.take)
    assert len(set(result.steal)) == len(result.steal) <= max_steal
    mine = sum(
        1 for lease in leases if lease.owner == "me" and not lease.expired and not lease.finished
    )
    assert mine + len(result.take) + len(result.steal) <= max(max_leases, mine)
    for key in result.take:
        lease = by_key[key]
        assert not lease.finished and (lease.expired or lease.owner is None)
    for key in result.steal:
        lease = by_key[key]
        assert not lease.finished and not lease.expired and lease.owner not in (None, "me")
