"""Order per key: changes of one key go out one after another, different keys concurrently.

:func:`plan_units` cuts a shard's batch into units that may run concurrently: with one
change per request, a unit is one key's changes (in shard order); with batches, keys are
spread over ``concurrency`` units by a stable hash, each unit keeping shard order, so one
request holds several keys and a key never sits in two units. :func:`run_units` runs the
units (at most ``concurrency`` at a time); a unit stops at its first failure, so a later
change of a key is never sent before an earlier one has been delivered.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

__all__ = ["chunks", "plan_units", "run_units"]

T = TypeVar("T")


def plan_units(
    items: Sequence[T], key_of: Callable[[T], str], *, batch: int, concurrency: int
) -> list[list[T]]:
    """The concurrent units of ``items`` (see the module docstring), each in input order."""
    units: dict[object, list[T]] = {}
    for item in items:
        key = key_of(item)
        slot: object = key if batch == 1 else zlib.crc32(key.encode()) % concurrency
        units.setdefault(slot, []).append(item)
    return list(units.values())


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in consecutive pieces of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


async def run_units(
    units: Sequence[Sequence[T]],
    send: Callable[[Sequence[T]], Awaitable[None]],
    *,
    batch: int,
    concurrency: int,
) -> list[BaseException]:
    """Send every unit in chunks of ``batch``, ``concurrency`` units at a time.

    ``concurrency`` workers each take the next unit and send it to its end, so a unit's
    chunks never overlap. A unit stops at the first chunk whose ``send`` raises; the
    errors are returned (one per stopped unit), never raised, so the other units finish.
    """
    pending = deque(units)
    errors: list[BaseException] = []

    async def worker() -> None:
        while pending:
            unit = pending.popleft()
            try:
                for chunk in chunks(unit, batch):
                    await send(chunk)
            except Exception as exc:
                errors.append(exc)

    workers = min(concurrency, len(pending))
    if workers == 1:
        await worker()
    elif workers > 1:
        await asyncio.gather(*(worker() for _ in range(workers)))
    return errors
