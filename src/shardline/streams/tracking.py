"""Pure rules for following a table across stream generations.

Disabling and re-enabling a table's stream gives it a new stream ARN; the old stream's
shards all close and stay readable for 24 hours. When the user named a table (not a
stream ARN), shardline drains the old stream to its end and then follows the new one:
the new stream gets leases only once every older stream is drained, and it starts at
TRIM_HORIZON so that no change written after the switch is missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shardline.leases.model import TRIM_HORIZON, Lease
from shardline.streams.model import Shard
from shardline.streams.shards import NewLease, leases_to_create


@dataclass(frozen=True)
class TrackedStream:
    """One stream of the table with every shard it lists."""

    arn: str
    shards: tuple[Shard, ...]


def plan_leases(
    streams: Sequence[TrackedStream], leases: Mapping[str, Lease], initial_position: str
) -> list[NewLease]:
    """Leases to create, oldest stream first; stop at the first stream not yet drained.

    ``initial_position`` applies only to a lease table that is still empty; after that,
    shards without a leased ancestor start at TRIM_HORIZON (a continuation must not
    skip the changes written between two syncs or two streams).
    """
    position = initial_position if not leases else TRIM_HORIZON
    plan: list[NewLease] = []
    for index, stream in enumerate(streams):
        created = leases_to_create(stream.shards, leases, position)
        plan.extend(created)
        is_latest = index == len(streams) - 1
        if not is_latest and not is_drained(stream, leases, pending=bool(created)):
            break
        position = TRIM_HORIZON
    return plan


def is_drained(stream: TrackedStream, leases: Mapping[str, Lease], *, pending: bool) -> bool:
    """Every shard is closed and every lease of the stream reached SHARD_END."""
    if pending or any(shard.is_open for shard in stream.shards):
        return False
    own = [leases[s.shard_id] for s in stream.shards if s.shard_id in leases]
    return all(lease.is_finished for lease in own)


def has_leases(stream: TrackedStream, leases: Mapping[str, Lease]) -> bool:
    """Whether any shard of the stream has a lease."""
    return any(shard.shard_id in leases for shard in stream.shards)
