"""How soon to scan the lease table again: the pure decision behind the take loop.

A consistent Scan reads every lease item (1 read unit per 4 KB), so a worker that scans
every second pays for the whole table every second. Most of the time nothing is due: every
lease is owned and renewed, the fleet is balanced, nobody is handing over. Then a worker
scans at the *quiet* interval; while something is due it scans at the *fast* one:

* an unfinished lease is unowned or expired (a worker released it, or died);
* a lease is *expiring*: its counter has not been seen to change for longer than its
  owner's renewal period allows (renew interval + one quiet scan + a margin), so the
  owner is probably dead and the lease expires soon;
* a graceful handoff is pending (``checkpointOwner`` set, or this worker asked for one);
* the fleet is unbalanced: this worker's take plan is not empty, or the unfinished leases
  held per live worker differ by more than one;
* the owners changed since the previous scan (a take, a steal, a release, a new or a
  deleted lease): the fleet is settling.

The quiet interval is bounded by the two failover targets, not only by cost; the argument
is in ``docs/leases.md`` ("How often the table is scanned"). ``--lease-scan-interval``
sets one fixed interval for both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shardline.leases.balance import LeaseState

__all__ = [
    "EXPIRING_MARGIN",
    "QUIET_CAP",
    "ScanObservation",
    "ScanPace",
    "default_pace",
    "fixed_pace",
    "is_unbalanced",
    "next_scan_interval",
    "observe_scan",
]

QUIET_CAP = 1.5
"""Longest quiet interval (s). A release (SIGTERM) is seen only by the other workers'
scans, so the quiet interval plus the release and the first batch must fit in 2 s; an
expired lease is seen at most one quiet scan late, which must fit in failover + 3 s."""

EXPIRING_MARGIN = 0.5
"""Slack (s) on top of renew interval + quiet interval before a still counter is suspect."""


@dataclass(frozen=True)
class ScanPace:
    """The two intervals (s): ``fast`` while something is due, ``quiet`` otherwise."""

    fast: float
    quiet: float

    def __post_init__(self) -> None:
        if not 0 < self.fast <= self.quiet:
            raise ValueError(f"need 0 < fast <= quiet, got {self.fast} and {self.quiet}")


def default_pace(failover_time: float, fast: float) -> ScanPace:
    """``fast`` (today's interval, failover/4 at most 1 s) while something is due; else
    failover/4, but never more than :data:`QUIET_CAP` nor less than ``fast``."""
    return ScanPace(fast=fast, quiet=max(fast, min(failover_time / 4, QUIET_CAP)))


def fixed_pace(interval: float) -> ScanPace:
    """``--lease-scan-interval``: one interval whatever the table shows."""
    return ScanPace(fast=interval, quiet=interval)


@dataclass(frozen=True)
class ScanObservation:
    """What one scan showed, as far as the pace is concerned (each field: a reason to
    scan fast)."""

    unowned: bool = False
    """An unfinished lease is unowned or expired."""
    expiring: bool = False
    """An unfinished lease of another worker has a counter still for too long."""
    handoff_pending: bool = False
    """A lease has ``checkpointOwner`` set, or this worker waits for a handoff."""
    unbalanced: bool = False
    """This worker would take or steal, or live workers' counts differ by more than one."""
    changed: bool = False
    """Owners (or the set of leases) changed since the previous scan."""

    @property
    def reasons(self) -> tuple[str, ...]:
        names = ("unowned", "expiring", "handoff_pending", "unbalanced", "changed")
        return tuple(name for name in names if getattr(self, name))

    @property
    def quiet(self) -> bool:
        return not self.reasons


def next_scan_interval(observation: ScanObservation, pace: ScanPace) -> float:
    """Seconds until the next scan: fast while anything is due, else quiet."""
    return pace.quiet if observation.quiet else pace.fast


def is_unbalanced(leases: Sequence[LeaseState], me: str) -> bool:
    """Do the unfinished leases held per live worker (``me`` included, with 0 if it holds
    none) differ by more than one?"""
    counts: dict[str, int] = {me: 0}
    for lease in leases:
        if lease.owner is not None and not lease.expired:
            counts.setdefault(lease.owner, 0)
            if not lease.finished:
                counts[lease.owner] += 1
    return max(counts.values()) - min(counts.values()) > 1


def observe_scan(
    leases: Sequence[LeaseState],
    me: str,
    *,
    still_for: Mapping[str, float],
    expiring_after: float,
    handoff_pending: bool,
    would_take: bool,
    previous_owners: Mapping[str, str | None] | None,
) -> ScanObservation:
    """Summarise one scan.

    ``still_for``: per lease, seconds since this worker saw its counter change;
    ``expiring_after``: how long a live lease's counter may stay still (renew interval +
    quiet interval + margin); ``handoff_pending``: some lease has ``checkpointOwner`` or
    this worker waits for a handoff; ``would_take``: this worker's take plan is not empty;
    ``previous_owners``: key -> owner at the previous scan (None: no previous scan).
    """
    unfinished = [lease for lease in leases if not lease.finished]
    unowned = any(lease.owner is None or lease.expired for lease in unfinished)
    expiring = any(
        lease.owner is not None
        and lease.owner != me
        and still_for.get(lease.key, float("inf")) > expiring_after
        for lease in unfinished
    )
    owners = {lease.key: lease.owner for lease in leases}
    changed = previous_owners is None or dict(previous_owners) != owners
    return ScanObservation(
        unowned=unowned,
        expiring=expiring,
        handoff_pending=handoff_pending,
        unbalanced=would_take or is_unbalanced(leases, me),
        changed=changed,
    )
