"""Pure check: does a lease table belong to the stream we were asked to read?

shardline stores nothing but leases in the table (no marker item), so the answer is
read from the leases themselves: a DynamoDB shard id embeds its creation time
(``shardId-<epoch ms>-<hex>``). A table whose leases name none of the stream's shards
(nor their parents), although some lease was created while the stream's oldest listed
shard already existed, tracks a different stream. Leases older than everything the
stream still lists are a table left behind by a long stop (or a disabled stream):
those are accepted, and the consumer reports what was trimmed.
"""

from __future__ import annotations

from collections.abc import Iterable

from shardline.leases.model import Lease
from shardline.streams.model import Shard


def shard_creation_ms(shard_id: str) -> int | None:
    """The creation time a shard id embeds, or None if it is not a shard id."""
    parts = shard_id.split("-")
    if len(parts) == 3 and parts[0] == "shardId" and parts[1].isdigit():
        return int(parts[1])
    return None


def tracks_another_stream(leases: Iterable[Lease], shards: Iterable[Shard]) -> bool:
    """True when the leases evidently belong to a different stream."""
    keys = {lease.key for lease in leases}
    shard_list = list(shards)
    if not keys or not shard_list:
        return False
    listed = {s.shard_id for s in shard_list}
    listed |= {s.parent_shard_id for s in shard_list if s.parent_shard_id}
    if keys & listed:
        return False
    created = [shard_creation_ms(key) for key in keys]
    if any(c is None for c in created):
        return True  # not single-stream shard-id keys: not a table of ours
    stream_created = [shard_creation_ms(s.shard_id) for s in shard_list]
    oldest_listed = min((c for c in stream_created if c is not None), default=None)
    if oldest_listed is None:
        return False
    return max(c for c in created if c is not None) >= oldest_listed
