"""The checkpoint frontier: how far a shard may be checkpointed while batches overlap.

Records are registered in shard order as they arrive. Each is later marked done
(handled, filtered out, or given to the failure destination), in any order, because
batches of different keys run concurrently. The frontier is the last record of the
longest done prefix: a checkpoint there never passes a record still in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class Frontier:
    """Tracks registered and done sequence numbers of one shard (pure, no I/O)."""

    def __init__(self) -> None:
        self._pending: deque[str] = deque()
        self._done: set[str] = set()
        self._frontier: str | None = None
        self._last_registered: str | None = None

    @property
    def value(self) -> str | None:
        """The last sequence number up to which every record is done (``None``: none yet)."""
        return self._frontier

    @property
    def last_registered(self) -> str | None:
        """The largest sequence number registered so far."""
        return self._last_registered

    @property
    def in_flight(self) -> int:
        """Registered records not yet behind the frontier."""
        return len(self._pending)

    def register(self, sequence_numbers: Iterable[str]) -> None:
        """Records arrived, in shard order (each larger than every earlier one)."""
        for seq in sequence_numbers:
            self._pending.append(seq)
            self._last_registered = seq

    def mark_done(self, sequence_numbers: Iterable[str]) -> str | None:
        """Records are finished; returns the new frontier (or ``None`` if it did not move)."""
        self._done.update(sequence_numbers)
        moved = False
        while self._pending and self._pending[0] in self._done:
            self._frontier = self._pending.popleft()
            self._done.discard(self._frontier)
            moved = True
        return self._frontier if moved else None

    def all_done(self) -> bool:
        """Every registered record is done."""
        return not self._pending
