"""The one retry helper: which errors are retried, the waits, giving up, stopping."""

from __future__ import annotations

import pytest

from shardline.retry import Backoff, Retry, WaitTooLong, backoff_delay, retry_after_of


class Busy(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("busy")
        self.retry_after = retry_after


class Stop(Exception):
    pass


class Script:
    """Fails with the given errors in turn, then returns the number of tries."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.tries = 0
        self.waits: list[float] = []

    async def __call__(self) -> int:
        self.tries += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.tries

    async def pause(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_backoff_doubles_up_to_the_cap_and_honours_retry_after() -> None:
    assert [backoff_delay(k, 0.5, 3) for k in range(5)] == [0.0, 0.5, 1.0, 2.0, 3.0]
    backoff = Backoff(0.5, 3)
    assert backoff(2) == 1.0
    assert backoff(2, Busy(retry_after=7)) == 7.0
    assert backoff(2, Busy(retry_after=0.1)) == 1.0
    assert retry_after_of(ValueError()) == 0.0
    assert retry_after_of(Busy(retry_after=-1)) == 0.0


async def test_retriable_errors_are_retried_with_the_waits_in_order() -> None:
    script = Script(Busy(), Busy(), Busy(retry_after=9))
    seen: list[tuple[int, float]] = []
    retry = Retry(Backoff(1, 4), pause=script.pause)
    assert await retry.run(script, lambda e, n, wait: seen.append((n, wait))) == 4
    assert script.waits == [1.0, 2.0, 9.0]
    assert seen == [(1, 1.0), (2, 2.0), (3, 9.0)]


async def test_other_errors_are_raised_at_once() -> None:
    script = Script(ValueError("bad"))
    retry = Retry(Backoff(1, 4), pause=script.pause, retriable=lambda e: isinstance(e, Busy))
    with pytest.raises(ValueError, match="bad"):
        await retry.run(script)
    assert script.tries == 1 and script.waits == []


async def test_the_limit_raises_the_last_error_again() -> None:
    script = Script(Busy(), Busy(), Busy())
    retry = Retry(Backoff(1, 4), pause=script.pause, limit=2)
    with pytest.raises(Busy):
        await retry.run(script)
    assert script.tries == 3 and script.waits == [1.0, 2.0]


async def test_a_wait_longer_than_allowed_gives_up_with_the_wait() -> None:
    script = Script(Busy(), Busy(retry_after=30))
    retry = Retry(Backoff(1, 4), pause=script.pause, max_wait=5)
    with pytest.raises(WaitTooLong) as raised:
        await retry.run(script)
    assert raised.value.wait == 30 and isinstance(raised.value.error, Busy)
    assert script.waits == [1.0]


async def test_a_pause_that_raises_stops_retrying() -> None:
    script = Script(Busy(), Busy())

    async def stopping(seconds: float) -> None:
        raise Stop

    with pytest.raises(Stop):
        await Retry(Backoff(1, 4), pause=stopping).run(script)
    assert script.tries == 1


async def test_a_pause_until_an_event_raises_stopped_once_it_is_set() -> None:
    import asyncio

    from shardline.retry import Stopped, pause_until

    stop = asyncio.Event()
    pause = pause_until(stop)
    await pause(0.01)  # not set: an ordinary sleep
    asyncio.get_running_loop().call_later(0.01, stop.set)
    with pytest.raises(Stopped):
        await pause(30)
