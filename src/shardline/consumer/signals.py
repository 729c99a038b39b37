"""What the worker tells a shard consumer (lease lost, stop, hand over, wake up), and the
pause every wait of the consumer goes through, so that a signal ends any wait at once."""

from __future__ import annotations

import asyncio

from shardline.waiting import wait_event

__all__ = ["HandoffRequested", "LeaseLost", "ShutdownRequested", "Signals", "is_signal"]


class LeaseLost(Exception):
    """Internal signal: the lease is gone, stop the shard."""


class HandoffRequested(Exception):
    """Internal signal: another worker asked for the lease (a balance steal)."""


class ShutdownRequested(Exception):
    """Internal signal: the worker is stopping."""


def is_signal(error: BaseException) -> bool:
    """One of the signals above (never retried: they end what the consumer is doing)."""
    return isinstance(error, LeaseLost | HandoffRequested | ShutdownRequested)


class Signals:
    """One shard consumer's signals; :meth:`check` raises the one that was given."""

    def __init__(self) -> None:
        self._lost = asyncio.Event()
        self._stop = asyncio.Event()
        self._handoff = asyncio.Event()
        self._wake = asyncio.Event()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def lease_lost(self) -> None:
        self._lost.set()
        self._wake.set()

    def request_shutdown(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_handoff(self) -> None:
        self._handoff.set()
        self._wake.set()

    def wake(self) -> None:
        """Something changed (a parent finished): re-check without waiting for the poll."""
        self._wake.set()

    def check(self) -> None:
        """Raise :class:`LeaseLost`, :class:`HandoffRequested` or :class:`ShutdownRequested`
        (in that order of precedence) if given."""
        if self._lost.is_set():
            raise LeaseLost
        if self._handoff.is_set():
            raise HandoffRequested
        if self._stop.is_set():
            raise ShutdownRequested

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at once on a signal (lease lost, shutdown, parent finished)."""
        if seconds > 0:
            await wait_event(self._wake, seconds)
        self._wake.clear()
        self.check()
