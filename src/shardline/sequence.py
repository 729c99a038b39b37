"""KCL checkpoint values: their order and the range a new checkpoint must fall into.

A checkpoint is either a sentinel or a sequence number (a string of decimal digits),
paired with a sub-sequence number (always 0 for DynamoDB Streams). KCL orders them

``AT_TIMESTAMP < TRIM_HORIZON < LATEST < any sequence number (by integer value) < SHARD_END``

with ties broken by the sub-sequence number.
"""

from __future__ import annotations

from shardline.errors import CheckpointValueError
from shardline.leases.model import AT_TIMESTAMP, LATEST, SHARD_END, TRIM_HORIZON

__all__ = ["is_sequence_number", "sort_key", "validate_checkpoint"]

SortKey = tuple[int, int, int]

_NUMERIC_RANK = 3
_SENTINEL_RANK = {AT_TIMESTAMP: 0, TRIM_HORIZON: 1, LATEST: 2, SHARD_END: 4}


def is_sequence_number(value: str) -> bool:
    """True for a non-empty string of ASCII digits."""
    return value.isascii() and value.isdigit()


def sort_key(value: str, sub: int = 0) -> SortKey:
    """A key that orders checkpoint values as KCL's ``ExtendedSequenceNumber`` does.

    Raises :class:`~shardline.errors.CheckpointValueError` for a value that is neither
    a sentinel nor a string of digits.
    """
    if is_sequence_number(value):
        return (_NUMERIC_RANK, int(value), sub)
    rank = _SENTINEL_RANK.get(value)
    if rank is None:
        raise CheckpointValueError(
            f"{value!r} is neither a sequence number (digits only) nor a sentinel "
            f"({', '.join(sorted(_SENTINEL_RANK))})"
        )
    return (rank, 0, sub)


def validate_checkpoint(
    new: str,
    new_sub: int,
    *,
    last: str,
    last_sub: int,
    largest_permitted: str,
    largest_sub: int,
) -> None:
    """Raise unless ``new`` is a value a processor may checkpoint at now.

    The value must be a sequence number or ``SHARD_END``, its sub-sequence number must
    not be negative, and it must lie between the last checkpoint and the largest value
    delivered to the processor, both inclusive (so checkpoints are monotonic and never
    run ahead of delivery). Raises :class:`~shardline.errors.CheckpointValueError`,
    KCL's ``IllegalArgumentException``.
    """
    if new_sub < 0:
        raise CheckpointValueError(
            f"Could not checkpoint at sub-sequence number {new_sub}: it must not be negative"
        )
    if not (new == SHARD_END or is_sequence_number(new)):
        raise CheckpointValueError(
            f"Could not checkpoint at {new!r}: a checkpoint is a sequence number "
            f"(digits only) or {SHARD_END}"
        )
    key = sort_key(new, new_sub)
    if not sort_key(last, last_sub) <= key <= sort_key(largest_permitted, largest_sub):
        raise CheckpointValueError(
            f"Could not checkpoint at extended sequence number {new}.{new_sub} as it did "
            f"not fall into acceptable range between the last checkpoint {last}.{last_sub} "
            f"and the greatest extended sequence number passed to this record processor "
            f"{largest_permitted}.{largest_sub}"
        )
