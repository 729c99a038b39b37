"""Lease expiry judged as KCL judges it: by the counter, on a monotonic clock.

A lease is expired when its ``leaseCounter`` has not changed for longer than the
failover time, as this worker's own scans observed it. Wall clocks are never compared
across machines. A lease without an owner (new, or released by a worker that shut
down) is expired at once; one first seen with an owner gets a full failover period.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

_NEVER = float("-inf")


class Leased(Protocol):
    """What expiry needs of a lease-like item (a shard lease, a snapshot segment)."""

    @property
    def key(self) -> str: ...

    @property
    def owner(self) -> str | None: ...

    @property
    def counter(self) -> int: ...


class ExpiryTracker:
    """Remembers, per lease, when this worker last saw its counter change."""

    def __init__(self, failover_time: float) -> None:
        self.failover_time = failover_time
        self._seen: dict[str, tuple[int, float]] = {}

    def observe(self, leases: Iterable[Leased], now: float) -> None:
        """Record one scan of the table taken at ``now``; forget leases that are gone."""
        seen: dict[str, tuple[int, float]] = {}
        for lease in leases:
            previous = self._seen.get(lease.key)
            if lease.owner is None:
                seen[lease.key] = (lease.counter, _NEVER)
            elif previous is not None and previous[0] == lease.counter:
                seen[lease.key] = previous
            else:
                seen[lease.key] = (lease.counter, now)
        self._seen = seen

    def is_expired(self, key: str, now: float) -> bool:
        """True when the counter has been still for longer than the failover time."""
        entry = self._seen.get(key)
        if entry is None:
            return True
        return now - entry[1] > self.failover_time

    def still_for(self, now: float) -> dict[str, float]:
        """Per lease, seconds since its counter was last seen to change (inf: unowned)."""
        return {key: now - changed for key, (_, changed) in self._seen.items()}
