"""wait_event: an event wait with a time limit that never swallows a cancellation."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from shardline.waiting import wait_event


async def test_returns_true_when_set_and_false_on_timeout() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5) is True
    assert await wait_event(event, 0) is True  # already set: no wait at all


async def wait_for_event(event: asyncio.Event, timeout: float) -> bool:
    """The pattern wait_event replaced, kept here to show the test can fail."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def cancelled_while_set(
    waiter: Callable[[asyncio.Event, float], Coroutine[Any, Any, bool]],
) -> bool:
    """Cancel a waiting task in the same loop iteration as its event is set."""
    event = asyncio.Event()
    task = asyncio.create_task(waiter(event, 10))
    for _ in range(3):
        await asyncio.sleep(0)  # the task is now inside event.wait()
    event.set()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


async def test_a_cancellation_racing_the_event_is_kept() -> None:
    assert await cancelled_while_set(wait_event)


@pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="asyncio.wait_for keeps the cancellation since 3.12"
)
async def test_the_replaced_pattern_loses_it_on_python_3_11() -> None:
    assert not await cancelled_while_set(wait_for_event)
