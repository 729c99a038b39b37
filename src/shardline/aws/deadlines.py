"""Deadlines of AWS calls: which calls get one, how long, and how it splits into attempts.

Pure functions; :class:`~shardline.aws.client.AwsJsonClient` applies them. A lease
renewal, take, checkpoint or release must end -- or fail after a retry on a fresh
connection -- before the next renewal is due (every failover / 3), so a request stuck on a
silently dead keep-alive connection never costs the lease.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LEASE_OPERATIONS", "attempt_timeout", "lease_call_deadline"]

LEASE_OPERATIONS: Final = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem"})
"""The item calls renewals, takes, checkpoints and releases make on the lease table."""


def lease_call_deadline(failover_time: float) -> float:
    """Deadline of one lease-table item call, retries included: a quarter of the failover
    time, so it ends before the next renewal is due (every failover / 3)."""
    return failover_time / 4


def attempt_timeout(read_timeout: float, remaining: float | None, deadline: float | None) -> float:
    """Time limit of one attempt: ``read_timeout``, at most half the call's deadline (so a
    retry on a fresh connection fits) and at most what is left of it."""
    limit = read_timeout
    if deadline is not None:
        limit = min(limit, deadline / 2)
    if remaining is not None:
        limit = min(limit, remaining)
    return max(limit, 0.0)
