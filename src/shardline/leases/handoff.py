"""Graceful lease handoff on balance steals: the pure decisions of both sides.

A worker that steals a lease for balance does not take it at once. It asks for it, in
the shape KCL 3 uses (``reference/kcl-compat.md`` 1.5 item 9, 1.6): ``leaseOwner`` :=
the next owner, ``checkpointOwner`` := the current owner, ``leaseCounter`` unchanged, so
the current owner can still renew and checkpoint. The current owner stops fetching,
lets the batch in flight finish, lets its processor checkpoint, and completes the
handoff (``checkpointOwner`` removed, counter + 1). Only then does the next owner take
the lease, from that checkpoint. If the current owner does not complete within the
handoff timeout, the next owner takes the lease as before (counter + 1, which fences
the old owner's checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from shardline.leases.model import Lease

__all__ = ["HandoffStep", "PendingHandoff", "asked_to_hand_over", "next_step", "still_held"]


class HandoffStep(Enum):
    """What the next owner does about a handoff it asked for, after one look at the lease."""

    WAIT = "wait"
    """The current owner has not handed over yet; look again shortly."""
    ACQUIRE = "acquire"
    """Handed over: take the lease, starting from the checkpoint it now holds."""
    TAKE_OVER = "take-over"
    """Not handed over within the timeout: take the lease anyway (a plain steal)."""
    ABANDON = "abandon"
    """The lease went to someone else, or away; forget the request."""


@dataclass(frozen=True)
class PendingHandoff:
    """A handoff this worker asked for: ``previous`` is the owner asked to hand over,
    ``requested_at`` the monotonic time of the request."""

    key: str
    previous: str
    requested_at: float


def next_step(
    pending: PendingHandoff, seen: Lease | None, me: str, now: float, timeout: float
) -> HandoffStep:
    """Decide from the lease as read now (None: it was deleted)."""
    if seen is None or seen.owner != me:
        return HandoffStep.ABANDON
    if seen.checkpoint_owner is None:
        return HandoffStep.ACQUIRE
    if seen.checkpoint_owner != pending.previous:
        return HandoffStep.ABANDON
    if now - pending.requested_at >= timeout:
        return HandoffStep.TAKE_OVER
    return HandoffStep.WAIT


def asked_to_hand_over(lease: Lease, me: str) -> bool:
    """The current owner's side: ``me`` is asked to hand this lease to its next owner."""
    return lease.checkpoint_owner == me and lease.owner != me


def still_held(seen: Lease | None, me: str, counter: int) -> bool:
    """Does a fresh read show the lease as ``me`` holds it (same counter, still mine)?

    A handoff request leaves the counter alone and keeps ``me`` as the actual owner, so
    it does not count as a move (the handoff itself follows); any take does.
    """
    return seen is not None and seen.counter == counter and seen.actual_owner == me
