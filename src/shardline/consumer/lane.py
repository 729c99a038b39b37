"""ProcessorLane: one shard's processor calls, in order, with retries and checkpoints.

A call starts only after the previous one returned. ``process_records`` is retried with
the same batch (backoff) until it succeeds, and the checkpointer may not pass a failed
batch meanwhile; ``shard_ended`` is called again until the processor checkpoints
``SHARD_END``. A call that overruns the processor timeout is reported, not abandoned:
the shard waits for it (nothing is skipped), other shards go on. Synchronous hooks run
on the worker's executor, ``async def`` hooks on the loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from shardline.checkpoint import Checkpointer, WriteCheckpoint
from shardline.consumer.host import ConsumerSettings
from shardline.consumer.signals import LeaseLost, Signals, is_signal
from shardline.errors import ShutdownError
from shardline.leases.model import SHARD_END, Lease
from shardline.metrics import Metrics
from shardline.processor import (
    AnyProcessor,
    InitializationInput,
    LeaseLostInput,
    ProcessRecordsInput,
    ShardEndedInput,
    ShutdownRequestedInput,
)
from shardline.records import StreamRecord
from shardline.retry import Backoff, Retry

log = logging.getLogger("shardline.consumer")

__all__ = ["ProcessorLane"]


class _NoShardEnd(Exception):
    """Internal: ``shard_ended`` returned without checkpointing SHARD_END."""


class ProcessorLane:
    """Calls one shard's processor (see the module docstring)."""

    def __init__(
        self,
        shard_id: str,
        processor: AnyProcessor,
        *,
        executor: Executor,
        settings: ConsumerSettings,
        signals: Signals,
        metrics: Metrics,
    ) -> None:
        self.shard_id = shard_id
        self.records_processed = 0
        self.initialized = False
        self.checkpointer: Checkpointer | None = None
        self._processor = processor
        self._executor = executor
        self._settings = settings
        self._signals = signals
        self._metrics = metrics
        self._counts_own_invocations = bool(getattr(processor, "counts_invocations", False))
        self._retry = Retry(
            Backoff(settings.retry_base_delay, settings.retry_max_delay),
            pause=signals.pause,
            retriable=lambda e: not is_signal(e),
        )

    async def initialize(self, lease: Lease, write: WriteCheckpoint) -> None:
        """Create the checkpointer (writing through ``write``), then ``initialize``."""
        self.checkpointer = Checkpointer(
            self.shard_id,
            write,
            asyncio.get_running_loop(),
            initial=lease.checkpoint,
            initial_sub=lease.checkpoint_sub,
        )
        await self._call(
            self._processor.initialize,
            InitializationInput(
                self.shard_id, lease.checkpoint, lease.checkpoint_sub, lease.counter
            ),
        )
        self.initialized = True

    def stop_checkpoints(self) -> None:
        """The lease is gone (or handed over): every later checkpoint raises."""
        if self.checkpointer is not None:
            self.checkpointer.disable()

    async def deliver(self, records: list[StreamRecord], millis_behind: int) -> None:
        """Hand one batch to the processor; retry it with backoff until it succeeds."""
        checkpointer = self._checkpointer()
        before = checkpointer.largest_permitted

        async def once() -> None:
            if records:
                checkpointer.delivered_up_to(records[-1].sequence_number)
            batch = ProcessRecordsInput(self.shard_id, records, checkpointer, millis_behind)
            if records and not self._counts_own_invocations:
                self._metrics.invocations.inc()
            await self._call_lease_bound(self._processor.process_records, batch)

        def failed(error: Exception, attempt: int, delay: float) -> None:
            if not self._counts_own_invocations:
                self._metrics.invocation_failures.inc()
            checkpointer.rewind_to(before)
            log.exception(
                "shard %s: processor failed on records %s..%s (attempt %d); "
                "retrying the same batch in %.1fs",
                self.shard_id,
                records[0].sequence_number if records else "-",
                records[-1].sequence_number if records else "-",
                attempt,
                delay,
            )

        await self._retry.run(once, failed)
        self.records_processed += len(records)

    async def end_shard(self) -> None:
        """Every record was delivered: ``shard_ended`` until the processor checkpoints
        SHARD_END (the shard's children cannot start before)."""
        checkpointer = self._checkpointer()
        checkpointer.mark_shard_end()

        async def once() -> None:
            self._signals.check()
            try:
                await self._call_lease_bound(
                    self._processor.shard_ended, ShardEndedInput(self.shard_id, checkpointer)
                )
            except Exception as exc:
                if is_signal(exc):
                    raise
                log.exception("shard %s: shard_ended failed", self.shard_id)
            if checkpointer.last_checkpoint != SHARD_END:
                raise _NoShardEnd

        def not_yet(error: Exception, attempt: int, delay: float) -> None:
            log.error(
                "shard %s: the processor did not checkpoint SHARD_END in shard_ended; "
                "the shard's children cannot start until it does (retrying)",
                self.shard_id,
            )

        await self._retry.run(once, not_yet)

    async def last_word(self) -> None:
        """``shutdown_requested``: the processor may checkpoint one last time."""
        if self.checkpointer is not None and not self._signals.lost:
            await self._call_quietly(
                self._processor.shutdown_requested,
                ShutdownRequestedInput(self.shard_id, self.checkpointer),
            )

    async def lease_lost(self) -> None:
        """``lease_lost``, if the processor was initialized."""
        if self.initialized:
            await self._call_quietly(self._processor.lease_lost, LeaseLostInput(self.shard_id))

    # --- calls -------------------------------------------------------------------------

    def _checkpointer(self) -> Checkpointer:
        assert self.checkpointer is not None, "the lane was not initialized"
        return self.checkpointer

    async def _call_lease_bound(self, method: Callable[[Any], Any], argument: object) -> None:
        """A call whose ``ShutdownError`` (a checkpoint after the lease was lost) ends the
        shard as lease lost."""
        try:
            await self._call(method, argument)
        except ShutdownError as exc:
            raise LeaseLost from exc

    async def _call(self, method: Callable[[Any], Any], argument: object) -> None:
        """Run one processor hook in this shard's lane, warning while it overruns."""
        if inspect.iscoroutinefunction(method):
            call: asyncio.Future[Any] = asyncio.ensure_future(method(argument))
        else:
            loop = asyncio.get_running_loop()
            call = loop.run_in_executor(self._executor, method, argument)
        await self._watch(call, method.__name__)

    async def _watch(self, call: asyncio.Future[Any], hook: str) -> None:
        timeout = self._settings.processor_timeout
        started = time.monotonic()
        while True:
            try:
                done, _ = await asyncio.wait({call}, timeout=timeout)
            except asyncio.CancelledError:
                call.cancel()
                raise
            if done:
                call.result()
                return
            log.error(
                "shard %s: processor %s has been running for %.0fs (timeout %.0fs) and looks "
                "stuck; this shard waits for it (nothing is skipped), other shards go on",
                self.shard_id,
                hook,
                time.monotonic() - started,
                timeout,
            )
            self._metrics.processor_timeouts.inc()

    async def _call_quietly(self, method: Callable[[Any], Any], argument: object) -> None:
        try:
            await self._call(method, argument)
        except Exception:
            log.exception("shard %s: processor hook %s failed", self.shard_id, method.__name__)
