"""Waiting for an :class:`asyncio.Event` with a time limit, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for`` returns normally when the awaited event is set in
the same loop iteration as the waiting task is cancelled: the cancellation is swallowed
(CPython gh-86296, fixed in 3.12). A loop like "wait for a wake-up or the interval, then
work" then keeps running after ``task.cancel()``, and whatever awaits that task waits
forever. ``asyncio.timeout`` does not have this flaw.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_event"]


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds passed; True if it was set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
