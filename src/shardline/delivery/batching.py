"""Pure batching decisions: partitions by item key, readiness of a buffer, batch cuts.

Lambda's ``ParallelizationFactor`` runs up to N batches of one shard at once and keeps
order per partition key. Here a record's lane is a stable hash of its ``Keys`` (the
item's primary key in DynamoDB JSON), so every change of one item goes to one lane.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def lane_of(keys: Mapping[str, Any], lanes: int) -> int:
    """The lane (0..lanes-1) of an item key; stable across processes and runs."""
    if lanes <= 1:
        return 0
    canonical = json.dumps(keys, sort_keys=True, separators=(",", ":")).encode()
    return zlib.crc32(canonical) % lanes


def batch_ready(
    buffered: int,
    *,
    batch_size: int,
    window: float,
    waited: float,
    flush: bool = False,
    buffered_bytes: int = 0,
    batch_bytes: int = 0,
) -> bool:
    """Whether a lane with ``buffered`` records should invoke now.

    As Lambda: when the batch is full, when the batching window (seconds since the first
    buffered record arrived) has passed, at once with a window of 0, or on ``flush``
    (shard end). With ``batch_bytes`` (0: no limit) also when the buffered records'
    sizes reach it.
    """
    if buffered <= 0:
        return False
    full = buffered >= batch_size or (batch_bytes > 0 and buffered_bytes >= batch_bytes)
    return flush or full or window <= 0 or waited >= window


def cut_batch(buffer: Sequence[T], batch_size: int) -> tuple[list[T], list[T]]:
    """The next batch (at most ``batch_size`` records, in order) and what remains."""
    return list(buffer[:batch_size]), list(buffer[batch_size:])


def records_within_bytes(sizes: Iterable[int], batch_bytes: int) -> int:
    """How many leading records fit in ``batch_bytes`` (at least one); -1 when
    ``batch_bytes`` is 0 or less (no limit)."""
    if batch_bytes <= 0:
        return -1
    total = 0
    count = 0
    for size in sizes:
        total += size
        if count and total > batch_bytes:
            return count
        count += 1
    return count
