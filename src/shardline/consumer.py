"""ShardConsumer: one held lease, from waiting-for-parents to its end.

States (:class:`ConsumerState`): ``waiting-for-parents -> initializing -> processing ->
(shard-ended | lease-lost | shutting-down | handing-over)``. Reads re-poll at once
while pages are non-empty and sleep the idle interval after an empty page. Processor
calls run in an ordered lane: a batch is delivered only after the previous call returned.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from shardline.checkpoint import Checkpointer
from shardline.consumer_state import (
    ConsumerSettings,
    ConsumerState,
    HandoffRequested,
    LeaseLost,
    ShardHost,
    ShutdownRequested,
)
from shardline.errors import (
    ExpiredIteratorError,
    ResourceNotFoundError,
    ShardlineError,
    ShutdownError,
    TrimmedDataAccessError,
)
from shardline.leases.model import LATEST, SHARD_END, TRIM_HORIZON, Lease
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
from shardline.streams.client import StreamsClient
from shardline.streams.model import RecordsPage
from shardline.streams.wire import WireRecord
from shardline.waiting import wait_event

log = logging.getLogger("shardline.consumer")
T = TypeVar("T")
__all__ = ["ConsumerSettings", "ConsumerState", "ShardConsumer", "ShardHost"]


class ShardConsumer:
    """Consumes one shard for as long as this worker holds its lease."""

    def __init__(
        self,
        lease: Lease,
        token: str,
        *,
        host: ShardHost,
        streams: StreamsClient,
        processor: AnyProcessor,
        executor: Executor,
        settings: ConsumerSettings,
        metrics: Metrics | None = None,
    ) -> None:
        self.shard_id = lease.key
        self.lease = lease
        self.token = token
        self.state = ConsumerState.WAITING_FOR_PARENTS
        self.records_processed = 0
        self._host = host
        self._streams = streams
        self._processor = processor
        self._executor = executor
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._iterator_age = self._metrics.iterator_age.labels(lease.key)
        self._millis_behind = 0  # age of the newest record of the last page read
        self._counts_own_invocations = bool(getattr(processor, "counts_invocations", False))
        self._lost = asyncio.Event()
        self._stop = asyncio.Event()
        self._handoff = asyncio.Event()
        self._wake = asyncio.Event()
        self._checkpointer: Checkpointer | None = None
        self._position: str | None = None  # sequence number of the last record fetched
        self._trim_gap_after: str | None = None
        self._children: frozenset[str] | None = None
        self._initialized = False
        self.trim_events = 0

    # --- signals from the worker -----------------------------------------------------

    def lease_lost(self) -> None:
        self._lost.set()
        self._wake.set()
        if self._checkpointer is not None:
            self._checkpointer.disable()

    def request_shutdown(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_handoff(self) -> None:
        """Another worker asked for the lease: stop fetching, let the batch in flight
        finish, then hand over (see :meth:`_hand_over`)."""
        self._handoff.set()
        self._wake.set()

    def wake(self) -> None:
        """Something changed (a parent finished): re-check without waiting for the poll."""
        self._wake.set()

    # --- the state machine -----------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._wait_for_parents()
            await self._initialize()
            reason = await self._consume()
        except LeaseLost:
            reason = ConsumerState.LEASE_LOST
            if self._initialized:
                await self._call_quietly(self._processor.lease_lost, LeaseLostInput(self.shard_id))
        except HandoffRequested:
            reason = await self._hand_over()
        except ShutdownRequested:
            reason = await self._shutdown()
        except Exception:
            log.exception("shard %s: consumer failed; the lease will be released", self.shard_id)
            reason = ConsumerState.FAILED
        self.state = reason
        await self._host.consumer_finished(self.shard_id, self.token, reason)

    async def _wait_for_parents(self) -> None:
        """Wait for the parents; a shard that waited reads its lease again before it
        starts (one consistent read) and stops quietly if the lease moved meanwhile."""
        waited = False
        while not await self._host.parents_done(self.lease):
            waited = True
            self.state = ConsumerState.WAITING_FOR_PARENTS
            await self._pause(self._settings.parent_poll_interval)
        self._check_signals()
        if waited and not await self._patiently(
            lambda: self._host.still_holds(self.shard_id, self.token)
        ):
            raise LeaseLost

    async def _initialize(self) -> None:
        self.state = ConsumerState.INITIALIZING
        loop = asyncio.get_running_loop()
        self._checkpointer = Checkpointer(
            self.shard_id,
            self._write_checkpoint,
            loop,
            initial=self.lease.checkpoint,
            initial_sub=self.lease.checkpoint_sub,
        )
        await self._call(
            self._processor.initialize,
            InitializationInput(
                self.shard_id, self.lease.checkpoint, self.lease.checkpoint_sub, self.lease.counter
            ),
        )
        self._initialized = True

    async def _consume(self) -> ConsumerState:
        assert self._checkpointer is not None
        if self.lease.checkpoint == SHARD_END:
            return ConsumerState.SHARD_ENDED
        try:
            await self._read_to_end()
        except ResourceNotFoundError:
            log.error(
                "shard %s is gone from the stream (expired after its retention) while its "
                "lease was at %s; records after that were never read and may be LOST. "
                "Ending the shard so its children can start.",
                self.shard_id,
                self._position or self.lease.checkpoint,
            )
            self._count_possible_loss()
        await self._end_shard()
        return ConsumerState.SHARD_ENDED

    async def _read_to_end(self) -> None:
        iterator: str | None = await self._iterator_from_checkpoint()
        self.state = ConsumerState.PROCESSING
        while iterator is not None:
            self._check_signals()
            page = await self._fetch(iterator)
            if page is None:  # iterator replaced after expiry or trimming
                iterator = await self._iterator_after_position()
                continue
            records = self._fresh_records(page)
            if records or self._settings.call_on_empty:
                await self._deliver(records)
            iterator = page.next_iterator
            if iterator is not None and not page.records:
                await self._pause(self._settings.idle_time)

    # --- reading ---------------------------------------------------------------------

    async def _iterator_from_checkpoint(self) -> str:
        checkpoint = self.lease.checkpoint
        if checkpoint in (TRIM_HORIZON, LATEST):
            return await self._get_iterator(checkpoint)
        self._position = checkpoint
        return await self._iterator_after_position()

    async def _iterator_after_position(self) -> str:
        if self._position is None:
            after_trim = self.trim_events > 0
            latest = self.lease.checkpoint == LATEST and not after_trim
            return await self._get_iterator(LATEST if latest else TRIM_HORIZON)
        try:
            return await self._get_iterator("AFTER_SEQUENCE_NUMBER", self._position)
        except TrimmedDataAccessError:
            self._report_trimmed()
            return await self._get_iterator(TRIM_HORIZON)

    async def _get_iterator(self, kind: str, sequence_number: str | None = None) -> str:
        return await self._patiently(
            lambda: self._streams.get_shard_iterator(
                self._settings.stream_arn, self.shard_id, kind, sequence_number
            )
        )

    async def _patiently(self, call: Callable[[], Awaitable[T]]) -> T:
        """Retry throttling, 5xx and connection failures in place, with backoff.

        The AWS client already retried a few times; a longer outage should not end the
        shard (and release its lease), only slow it down.
        """
        attempt = 0
        while True:
            try:
                return await call()
            except ShardlineError as exc:
                if not exc.retriable:
                    raise
                attempt += 1
                delay = self._retry_delay(attempt)
                log.warning(
                    "shard %s: %s; retrying in %.1fs (attempt %d)",
                    self.shard_id,
                    exc,
                    delay,
                    attempt,
                )
                await self._pause(delay)

    async def _fetch(self, iterator: str) -> RecordsPage | None:
        started = time.monotonic()
        self._metrics.get_records_calls.inc()
        try:
            page = await self._patiently(
                lambda: self._streams.get_records(iterator, self._settings.max_records)
            )
            self._metrics.get_records_latency.observe(time.monotonic() - started)
            self._metrics.records_polled.inc(len(page.records))
            self._millis_behind = _millis_behind(page.records)
            self._iterator_age.set(self._millis_behind)
            return page
        except ExpiredIteratorError:
            log.info(
                "shard %s: iterator expired; re-acquiring after %s", self.shard_id, self._position
            )
            return None
        except TrimmedDataAccessError:
            self._report_trimmed()
            return None

    def _report_trimmed(self) -> None:
        after = self._position or self.lease.checkpoint
        log.error(
            "shard %s: records after %s were trimmed before they were read (older than the "
            "stream's retention); resuming at TRIM_HORIZON. Changes in that range may be LOST.",
            self.shard_id,
            after,
        )
        self._trim_gap_after = after
        self._count_possible_loss()
        self._position = None

    def _count_possible_loss(self) -> None:
        self.trim_events += 1
        self._metrics.records_possibly_lost.inc()

    def _fresh_records(self, page: RecordsPage) -> list[StreamRecord]:
        """Wrap the page's records, dropping any at or below what was already fetched."""
        wires = page.records
        floor = int(self._position) if self._position and self._position.isdigit() else -1
        if wires and int(wires[0].dynamodb.SequenceNumber) <= floor:
            wires = [wire for wire in wires if int(wire.dynamodb.SequenceNumber) > floor]
        records = [StreamRecord(wire, self.shard_id) for wire in wires]
        if records:
            self._position = records[-1].sequence_number
            if self._trim_gap_after is not None:
                log.error(
                    "shard %s: resumed at %s after trimming; records after %s and before %s "
                    "may be LOST",
                    self.shard_id,
                    records[0].sequence_number,
                    self._trim_gap_after,
                    records[0].sequence_number,
                )
                self._trim_gap_after = None
        return records

    # --- processing ------------------------------------------------------------------

    async def _deliver(self, records: list[StreamRecord]) -> None:
        """Hand one batch to the processor; retry it with backoff until it succeeds."""
        assert self._checkpointer is not None
        before = self._checkpointer.largest_permitted
        attempt = 0
        while True:
            if records:
                self._checkpointer.delivered_up_to(records[-1].sequence_number)
            batch = ProcessRecordsInput(
                self.shard_id, records, self._checkpointer, self._millis_behind
            )
            if records and not self._counts_own_invocations:
                self._metrics.invocations.inc()
            try:
                await self._call(self._processor.process_records, batch)
            except ShutdownError as exc:
                raise LeaseLost from exc
            except Exception:
                if not self._counts_own_invocations:
                    self._metrics.invocation_failures.inc()
                attempt += 1
                self._checkpointer.rewind_to(before)
                delay = self._retry_delay(attempt)
                log.exception(
                    "shard %s: processor failed on records %s..%s (attempt %d); "
                    "retrying the same batch in %.1fs",
                    self.shard_id,
                    records[0].sequence_number if records else "-",
                    records[-1].sequence_number if records else "-",
                    attempt,
                    delay,
                )
                await self._pause(delay)
                self._check_signals()
                continue
            self.records_processed += len(records)
            return

    def _retry_delay(self, attempt: int) -> float:
        base = self._settings.retry_base_delay * (2 ** min(attempt - 1, 16))
        return float(min(base, self._settings.retry_max_delay))

    async def _end_shard(self) -> None:
        """Children get leases at once, then the processor must checkpoint SHARD_END."""
        assert self._checkpointer is not None
        self.state = ConsumerState.SHARD_ENDING
        self._children = await self._host.discover_children(self.shard_id)
        self._checkpointer.mark_shard_end()
        attempt = 0
        while self._checkpointer.last_checkpoint != SHARD_END:
            self._check_signals()
            try:
                await self._call(
                    self._processor.shard_ended, ShardEndedInput(self.shard_id, self._checkpointer)
                )
            except ShutdownError as exc:
                raise LeaseLost from exc
            except Exception:
                log.exception("shard %s: shard_ended failed", self.shard_id)
            if self._checkpointer.last_checkpoint != SHARD_END:
                attempt += 1
                log.error(
                    "shard %s: the processor did not checkpoint SHARD_END in shard_ended; "
                    "the shard's children cannot start until it does (retrying)",
                    self.shard_id,
                )
                await self._pause(self._retry_delay(attempt))

    async def _write_checkpoint(self, value: str, sub: int) -> None:
        children = self._children if value == SHARD_END else None
        await self._host.write_checkpoint(self.shard_id, self.token, value, sub, children)

    async def _shutdown(self) -> ConsumerState:
        self.state = ConsumerState.SHUTTING_DOWN
        await self._last_word()
        return ConsumerState.SHUTDOWN

    async def _hand_over(self) -> ConsumerState:
        """As KCL 3's graceful handoff: ``shutdown_requested`` (the processor checkpoints),
        then the lease goes to the worker that asked, then ``lease_lost``."""
        self.state = ConsumerState.HANDING_OVER
        await self._last_word()
        if self._checkpointer is not None:
            self._checkpointer.disable()
        await self._host.hand_over(self.shard_id, self.token)
        if self._initialized:
            await self._call_quietly(self._processor.lease_lost, LeaseLostInput(self.shard_id))
        return ConsumerState.HANDED_OVER

    async def _last_word(self) -> None:
        """``shutdown_requested``: the processor may checkpoint one last time."""
        if self._checkpointer is not None and not self._lost.is_set():
            await self._call_quietly(
                self._processor.shutdown_requested,
                ShutdownRequestedInput(self.shard_id, self._checkpointer),
            )

    # --- helpers ---------------------------------------------------------------------

    def _check_signals(self) -> None:
        if self._lost.is_set():
            raise LeaseLost
        if self._handoff.is_set():
            raise HandoffRequested
        if self._stop.is_set():
            raise ShutdownRequested

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on a signal (lease lost, shutdown, parent finished)."""
        if seconds > 0:
            await wait_event(self._wake, seconds)
        self._wake.clear()
        self._check_signals()

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


def _millis_behind(records: list[WireRecord]) -> int:
    """Age of the newest record (0 for an empty page: the reader is at the tip)."""
    if not records:
        return 0
    created = records[-1].dynamodb.ApproximateCreationDateTime
    if created is None:
        return 0
    return max(0, int((time.time() - created) * 1000))
