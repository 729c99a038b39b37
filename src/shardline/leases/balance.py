"""Which leases a worker should take or steal: pure lease-count balancing.

The shape is KCL's lease taker (``reference/kcl-compat.md`` 2.3-2.4), with three
choices of our own:

* **Finished leases are ignored.** A lease at ``SHARD_END`` has no work left; moving it
  buys nothing. Only its owner's presence counts (a worker holding only finished
  leases is alive, so it counts as a worker).
* **Hysteresis.** A worker steals from another only if that one holds at least two
  more unfinished leases than it does, so a difference of one never moves a lease and
  two workers never pass a lease back and forth.
* **Even stealing.** Each steal is taken from the currently most loaded eligible
  worker (ties broken at random), which spreads the steals across all overloaded
  workers, as the DynamoDB Streams adapter does, but never overshoots one of them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LeaseState", "TakePlan", "plan_takes"]


@dataclass(frozen=True)
class LeaseState:
    """What the taker needs to know about one lease, as this worker sees it now.

    ``expired`` is judged locally (the counter has not moved for the failover time, or
    the lease was first seen unowned); ``finished`` means the checkpoint is SHARD_END.
    """

    key: str
    owner: str | None
    expired: bool
    finished: bool


@dataclass(frozen=True)
class TakePlan:
    """Leases to take (expired or unowned) and leases to steal (held by others)."""

    take: tuple[str, ...] = ()
    steal: tuple[str, ...] = ()


def plan_takes(
    leases: Sequence[LeaseState],
    me: str,
    *,
    max_leases: int,
    max_steal: int,
    rng: random.Random,
) -> TakePlan:
    """Plan this worker's next take round.

    The target is ``ceil(unfinished / workers)`` (at least 1, at most ``max_leases``),
    where workers are the distinct owners of non-expired leases plus ``me``. Below
    target, take expired or unowned unfinished leases in random order (my own expired
    leases included: a restarted worker re-takes its own). Only when there are none,
    steal up to ``max_steal`` leases with the hysteresis rule above.
    """
    unfinished = [lease for lease in leases if not lease.finished]
    mine = sum(1 for lease in unfinished if _is_live(lease) and lease.owner == me)
    target = _target(len(unfinished), _worker_count(leases, me), max_leases)
    needed = target - mine
    if needed <= 0:
        return TakePlan()
    takeable = sorted(lease.key for lease in unfinished if not _is_live(lease))
    if takeable:
        rng.shuffle(takeable)
        return TakePlan(take=tuple(takeable[:needed]))
    budget = min(needed, max_steal)
    return TakePlan(steal=_plan_steals(unfinished, me, mine, target, budget, rng))


def _is_live(lease: LeaseState) -> bool:
    return lease.owner is not None and not lease.expired


def _worker_count(leases: Sequence[LeaseState], me: str) -> int:
    owners = {lease.owner for lease in leases if _is_live(lease)}
    owners.add(me)
    return len(owners)


def _target(unfinished: int, workers: int, max_leases: int) -> int:
    return min(max(1, math.ceil(unfinished / workers)), max_leases)


def _plan_steals(
    unfinished: Sequence[LeaseState],
    me: str,
    mine: int,
    target: int,
    budget: int,
    rng: random.Random,
) -> tuple[str, ...]:
    """Steal one lease at a time from the most loaded worker that is eligible: it
    holds at least ``target`` and at least ``mine + 2`` unfinished leases."""
    pools: dict[str, list[str]] = {}
    for lease in unfinished:
        if _is_live(lease) and lease.owner is not None and lease.owner != me:
            pools.setdefault(lease.owner, []).append(lease.key)
    for keys in pools.values():
        keys.sort()
        rng.shuffle(keys)
    counts = {owner: len(keys) for owner, keys in pools.items()}
    stolen: list[str] = []
    while len(stolen) < budget:
        victim = _most_loaded(counts, rng)
        if victim is None or counts[victim] < max(target, mine + 2):
            break
        stolen.append(pools[victim].pop())
        counts[victim] -= 1
        mine += 1
    return tuple(stolen)


def _most_loaded(counts: dict[str, int], rng: random.Random) -> str | None:
    if not counts:
        return None
    top = max(counts.values())
    return rng.choice(sorted(owner for owner, count in counts.items() if count == top))
