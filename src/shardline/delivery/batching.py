"""Pure batching decisions: partitions by item key, readiness of a buffer, batch cuts.

Lambda's ``ParallelizationFactor`` runs up to N batches of one shard at once and keeps
order per partition key. Here a record's lane is a stable hash of its ``Keys`` (the
item's primary key in DynamoDB JSON), so every change of one item goes to one lane.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
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
) -> bool:
    """Whether a lane with ``buffered`` records should invoke now.

    As Lambda: when the batch is full, when the batching window (seconds since the first
    buffered record arrived) has passed, at once with a window of 0, or on ``flush``
    (shard end).
    """
    if buffered <= 0:
        return False
    return flush or buffered >= batch_size or window <= 0 or waited >= window


def cut_batch(buffer: Sequence[T], batch_size: int) -> tuple[list[T], list[T]]:
    """The next batch (at most ``batch_size`` records, in order) and what remains."""
    return list(buffer[:batch_size]), list(buffer[batch_size:])
