"""The checkpointer handed to processors, with KCL's rules.

A checkpoint is monotonic, never ahead of the last record delivered, and fenced by the
lease counter: once the lease is lost, every checkpoint raises
:class:`~shardline.errors.ShutdownError`. ``checkpoint()`` with no argument records the
last delivered record, or SHARD_END once the shard has ended.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable

from shardline.errors import InvalidStateError, ShutdownError
from shardline.leases.model import SHARD_END
from shardline.sequence import validate_checkpoint

_LOOP_CHECK_INTERVAL = 0.5  # seconds between checks that the worker's loop still runs
_STOPPED = "the worker stopped before this checkpoint was written"

WriteCheckpoint = Callable[[str, int], Awaitable[None]]


class Checkpointer:
    """Records progress for one shard lease."""

    def __init__(
        self,
        shard_id: str,
        write: WriteCheckpoint,
        loop: asyncio.AbstractEventLoop,
        *,
        initial: str,
        initial_sub: int = 0,
    ) -> None:
        self.shard_id = shard_id
        self._write = write
        self._loop = loop
        self._last = (initial, initial_sub)
        self._largest = (initial, initial_sub)
        self._sequence_at_shard_end: tuple[str, int] | None = None
        self._enabled = True
        self._on_disable: list[Callable[[], None]] = []

    @property
    def last_checkpoint(self) -> str:
        """The last value written (a sequence number or a sentinel)."""
        return self._last[0]

    @property
    def enabled(self) -> bool:
        """False once the lease is lost: every checkpoint then raises ShutdownError."""
        return self._enabled

    @property
    def largest_permitted(self) -> str:
        return self._largest[0]

    # --- called by the consumer --------------------------------------------------------

    def delivered_up_to(self, sequence_number: str) -> None:
        """Records up to this one have been handed to the processor."""
        self._largest = (sequence_number, 0)

    def rewind_to(self, sequence_number: str) -> None:
        """A batch failed: it may not be checkpointed past until it is processed again."""
        self._largest = (sequence_number, 0)

    def mark_shard_end(self) -> None:
        """Every record was delivered: checkpoint() now means SHARD_END."""
        self._sequence_at_shard_end = self._largest
        self._largest = (SHARD_END, 0)

    def disable(self) -> None:
        """The lease is gone: no further checkpoints; tells whoever asked to be told."""
        if not self._enabled:
            return
        self._enabled = False
        for callback in self._on_disable:
            callback()

    def when_disabled(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the loop) when the lease is gone; at once if it is."""
        if self._enabled:
            self._on_disable.append(callback)
        else:
            callback()

    # --- called by processors ----------------------------------------------------------

    async def checkpoint_async(self, sequence_number: str | None = None, sub: int = 0) -> None:
        """Checkpoint from an ``async def`` processor (or any coroutine on the loop)."""
        if not self._enabled:
            raise ShutdownError(f"the lease of shard {self.shard_id} was lost")
        value = self._largest if sequence_number is None else (sequence_number, sub)
        if sequence_number is None and value == self._last:
            return  # nothing delivered since the last checkpoint
        validate_checkpoint(
            value[0],
            value[1],
            last=self._last[0],
            last_sub=self._last[1],
            largest_permitted=self._largest[0],
            largest_sub=self._largest[1],
        )
        if value == self._sequence_at_shard_end:
            value = (SHARD_END, 0)
        if value == self._last:
            return
        await self._write(value[0], value[1])
        self._last = value

    def checkpoint(self, sequence_number: str | None = None, sub: int = 0) -> None:
        """Checkpoint from a synchronous processor (which runs on a worker thread)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise InvalidStateError(
                "checkpoint() blocks; from async code use 'await checkpointer.checkpoint_async()'"
            )
        future: concurrent.futures.Future[None] = concurrent.futures.Future()

        def start() -> None:  # on the loop
            if future.set_running_or_notify_cancel():  # False: the caller gave up
                task = self._loop.create_task(self.checkpoint_async(sequence_number, sub))
                task.add_done_callback(lambda done: _settle(future, done))

        try:
            self._loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop is closed: the worker has stopped
            raise ShutdownError(_STOPPED) from None
        while True:
            try:
                future.result(timeout=_LOOP_CHECK_INTERVAL)
                return
            except TimeoutError:
                # A loop that stopped will never run the write; without this check the
                # thread would wait forever and hold up the process's exit.
                if self._loop.is_closed() or not self._loop.is_running():
                    future.cancel()
                    raise ShutdownError(_STOPPED) from None


def _settle(future: concurrent.futures.Future[None], task: asyncio.Task[None]) -> None:
    """Hand the outcome of the checkpoint task to the thread waiting on ``future``."""
    if task.cancelled():
        future.set_exception(ShutdownError(_STOPPED))
    elif (error := task.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(None)
