"""One way to retry: every retry loop of the consumer, the delivery path and the sinks.

A :class:`Retry` says which errors are retried, how long to wait before the next try
(usually a :class:`Backoff`: exponential, and at least what the error itself asked for
with ``retry_after``), how to wait (a pause that may raise to stop: lease lost, shutting
down), and when to give up: after ``limit`` failures (the last error is raised again),
or when the wait would be longer than ``max_wait`` (:class:`WaitTooLong`). What to log on
each failure is the caller's ``on_retry``.

The AWS client's own retries (``shardline.aws.backoff``, with jitter, inside one call)
sit below this: they are what a single try of a :class:`Retry` is made of.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from shardline.waiting import wait_event

__all__ = [
    "Backoff",
    "Retry",
    "Stopped",
    "WaitTooLong",
    "backoff_delay",
    "pause_until",
    "retry_after_of",
]

T = TypeVar("T")

#: Called after a failed try, inside its ``except``: (error, failures so far, delay).
OnRetry = Callable[[Exception, int, float], None]


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Exponential backoff before retry number ``failures`` (base, 2*base, ... cap)."""
    if failures < 1:
        return 0.0
    return float(min(base * 2 ** min(failures - 1, 30), cap))


def retry_after_of(error: BaseException) -> float:
    """The least wait an error asked for (``SinkError.retry_after``, HTTP Retry-After)."""
    wait = getattr(error, "retry_after", None)
    return float(wait) if isinstance(wait, int | float) and wait > 0 else 0.0


@dataclass(frozen=True)
class Backoff:
    """``base``, ``2 * base``, ... up to ``cap`` seconds; at least an error's ``retry_after``."""

    base: float
    cap: float

    def __call__(self, failures: int, error: BaseException | None = None) -> float:
        delay = backoff_delay(failures, self.base, self.cap)
        return delay if error is None else max(delay, retry_after_of(error))


class WaitTooLong(Exception):
    """Retrying was given up because the next wait would be longer than allowed."""

    def __init__(self, error: Exception, wait: float) -> None:
        super().__init__(f"{error} (next try in {wait:g}s)")
        self.error = error
        self.wait = wait


class Stopped(Exception):
    """A :func:`pause_until` pause ended because its event was set."""


def pause_until(stop: asyncio.Event) -> Callable[[float], Awaitable[None]]:
    """A :attr:`Retry.pause` that raises :class:`Stopped` as soon as ``stop`` is set."""

    async def pause(seconds: float) -> None:
        if await wait_event(stop, seconds):
            raise Stopped

    return pause


def _always(_: Exception) -> bool:
    return True


@dataclass(frozen=True)
class Retry:
    """A retry rule; :meth:`run` applies it to one operation."""

    delay: Callable[[int, Exception], float]
    """Seconds to wait after ``failures`` failed tries, the last with this error."""
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep
    """How to wait; may raise to stop retrying (lease lost, stopping)."""
    retriable: Callable[[Exception], bool] = _always
    """Which errors are retried; others are raised at once."""
    limit: int | None = None
    """Give up after this many failed tries (``None``: never)."""
    max_wait: float | None = None
    """Give up instead of waiting longer than this (e.g. a long ``Retry-After``)."""
    on_retry: OnRetry | None = None
    """Told of each failure that will be retried (unless :meth:`run` is given another)."""

    def too_long(self, wait: float) -> bool:
        return self.max_wait is not None and wait > self.max_wait

    def over_limit(self, failures: int) -> bool:
        return self.limit is not None and failures > self.limit

    async def run(self, attempt: Callable[[], Awaitable[T]], on_retry: OnRetry | None = None) -> T:
        """Await ``attempt()`` until it returns; retriable errors are retried after a pause."""
        on_retry = on_retry or self.on_retry
        failures = 0
        while True:
            try:
                return await attempt()
            except Exception as error:
                if not self.retriable(error):
                    raise
                failures += 1
                wait = self.delay(failures, error)
                if self.too_long(wait):
                    raise WaitTooLong(error, wait) from error
                if self.over_limit(failures):
                    raise
                if on_retry is not None:
                    on_retry(error, failures, wait)
            await self.pause(wait)
