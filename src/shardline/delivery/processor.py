"""``DeliveryProcessor``: Lambda's delivery controls around a batch handler.

It receives GetRecords pages from the shard consumer and, per shard:

1. drops records that match no filter (counted, and checkpointed past);
2. buffers the rest in ``parallelization_factor`` lanes by item key;
3. cuts batches of ``batch_size`` when full, when the batching window has passed, or at
   once with a window of 0; one batch per lane in flight, lanes concurrent;
4. invokes the handler; on failure retries with exponential backoff, bisects, honours
   partial batch responses, and gives batches up to the failure destination after
   ``maximum_retry_attempts`` or ``maximum_record_age_in_seconds``;
5. checkpoints the frontier: the last record before which everything is done.

With tumbling windows it checkpoints only when a window closes, so a restart replays the
whole open window with fresh state (state lives in memory, as in Lambda).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from shardline.checkpoint import Checkpointer
from shardline.delivery.batching import batch_ready, cut_batch, lane_of, records_within_bytes
from shardline.delivery.config import DeliveryConfig
from shardline.delivery.destinations import Destination
from shardline.delivery.document import FailedBatch
from shardline.delivery.failure_path import FailurePath
from shardline.delivery.frontier import Frontier
from shardline.delivery.handler_call import HandlerCall, Verdict
from shardline.delivery.invoke import Invoker, StreamArn, TumblingWindow, resolve_arn
from shardline.delivery.plan import (
    MAXIMUM_RECORD_AGE_EXCEEDED,
    RETRY_ATTEMPTS_EXHAUSTED,
    Attempt,
    expired_prefix,
    plan_failure,
)
from shardline.delivery.windows import WindowState, window_of
from shardline.errors import CheckpointError, ShutdownError
from shardline.lambda_compat import lambda_record
from shardline.metrics import Metrics
from shardline.processor import (
    AsyncRecordProcessor,
    InitializationInput,
    LeaseLostInput,
    ProcessRecordsInput,
    ShardEndedInput,
    ShutdownRequestedInput,
)
from shardline.records import StreamRecord
from shardline.retry import Backoff, Retry
from shardline.waiting import wait_event

log = logging.getLogger("shardline.delivery")

_MIN_WAIT = 0.05  # seconds: the shortest wait for a lane that is due by time


class _Stopped(Exception):
    """Internal: the processor is stopping; leave the lane, keep records undone."""


class _FinalCallFailed(Exception):
    """Internal: the final invocation of a tumbling window failed."""


@dataclass
class _Lane:
    buffer: list[StreamRecord] = field(default_factory=list)
    since: float | None = None
    size: int = 0  # the buffered records' sizes (counted with maximum_batch_bytes only)
    task: asyncio.Task[None] | None = None

    def busy(self) -> bool:
        return self.task is not None and not self.task.done()


@dataclass(frozen=True)
class DeliverySettings:
    """What a :class:`DeliveryProcessor` needs besides its config and handler."""

    stream_arn: StreamArn
    destination: Destination | None = None
    retry_base_delay: float = 0.5
    retry_max_delay: float = 30.0
    metrics: Metrics | None = None
    wall_clock: Callable[[], float] = time.time


class DeliveryProcessor(AsyncRecordProcessor):
    """One shard's batching, retries, filters, destinations and checkpoints."""

    #: The consumer leaves invocation counting to this processor (it calls the handler).
    counts_invocations = True

    def __init__(self, invoker: Invoker, config: DeliveryConfig, settings: DeliverySettings):
        self.config = config
        self._invoke_handler = invoker
        self._settings = settings
        self._metrics = settings.metrics or Metrics()
        self._now = settings.wall_clock
        self._shard_id = ""
        self._lanes = [_Lane() for _ in range(config.parallelization_factor)]
        self._frontier = Frontier()
        self._checkpointer: Checkpointer | None = None
        self._backoff = Backoff(settings.retry_base_delay, settings.retry_max_delay)
        self._retry = Retry(self._backoff, pause=self._sleep)
        self._call = HandlerCall(
            invoker,
            report_batch_item_failures=config.report_batch_item_failures,
            retry=self._retry,
            metrics=self._metrics,
        )
        self._failure_path = (
            None
            if settings.destination is None
            else FailurePath(
                settings.destination,
                on_failure=config.on_failure or "",
                retry=self._retry,
                metrics=self._metrics,
            )
        )
        self._checkpoint_lock = asyncio.Lock()
        self._written: str | None = None
        self._stopping = asyncio.Event()
        self._lost = False
        self._flushing = False
        self._window: WindowState | None = None
        self._high_water = config.batch_size * config.parallelization_factor + 1000
        #: With a bytes limit, about one batch's bytes wait while one is in flight.
        self._high_water_bytes = config.maximum_batch_bytes * config.parallelization_factor

    # --- lifecycle hooks ---------------------------------------------------------------

    async def initialize(self, initialization: InitializationInput) -> None:
        self._shard_id = initialization.shard_id

    async def process_records(self, batch: ProcessRecordsInput) -> None:
        """Take a page: filter, buffer, start ready lanes, wait while over the high water."""
        self._attach(batch.checkpointer)
        self._raise_if_lost()
        self._accept(batch.records)
        self._start_ready_lanes()
        await self._wait_below_high_water()
        if not self.config.tumbling:
            await self._checkpoint()
        self._raise_if_lost()

    async def shard_ended(self, ended: ShardEndedInput) -> None:
        """Deliver every buffered record, close the window early, then SHARD_END."""
        self._attach(ended.checkpointer)
        self._flushing = True
        await self._drain()
        if self._window is not None:
            await self._close_window(early=True)
        await self._checkpoint()
        self._raise_if_lost()
        if self._buffered() or not self._frontier.all_done():
            return  # stopping with records undone: never SHARD_END past them
        await ended.checkpointer.checkpoint_async()
        await self._close_invoker(lost=False)

    async def shutdown_requested(self, request: ShutdownRequestedInput) -> None:
        """Stop starting batches, let in-flight calls end, checkpoint what is done."""
        self._attach(request.checkpointer)
        self._stopping.set()
        await self._join_lanes()
        if not self.config.tumbling:
            await self._checkpoint()
        await self._close_invoker(lost=False)

    async def lease_lost(self, lost: LeaseLostInput) -> None:
        """Stop at once: the records are another worker's now."""
        self._on_lease_lost()
        for lane in self._lanes:
            if lane.task is not None:
                lane.task.cancel()
        await self._close_invoker(lost=True)

    def _attach(self, checkpointer: Checkpointer) -> None:
        """Use the consumer's checkpointer, and hear at once when its lease is lost."""
        if checkpointer is not self._checkpointer:
            self._checkpointer = checkpointer
            checkpointer.when_disabled(self._on_lease_lost)

    def _on_lease_lost(self) -> None:
        """Every wait ends now; undone records stay undone (no checkpoint past them)."""
        self._lost = True
        self._stopping.set()

    async def _close_invoker(self, *, lost: bool) -> None:
        """Tell an invoker with a ``close`` hook (the sinks) that the lease ended."""
        close = getattr(self._invoke_handler, "close", None)
        if close is not None:
            await close(lost=lost)

    # --- intake ------------------------------------------------------------------------

    def _accept(self, records: list[StreamRecord]) -> None:
        last = self._frontier.last_registered
        floor = -1 if last is None else int(last)
        fresh = [r for r in records if int(r.sequence_number) > floor]
        if not fresh:
            return
        self._frontier.register(r.sequence_number for r in fresh)
        passed = self._filtered(fresh)
        if len(passed) < len(fresh):
            kept = {r.sequence_number for r in passed}
            self._metrics.records_filtered_out.inc(len(fresh) - len(passed))
            self._frontier.mark_done(
                r.sequence_number for r in fresh if r.sequence_number not in kept
            )
        now = time.monotonic()
        for record in passed:
            lane = self._lanes[lane_of(record.keys_json, len(self._lanes))]
            if not lane.buffer:
                lane.since = now
            lane.buffer.append(record)
            if self.config.maximum_batch_bytes:
                lane.size += record.size_bytes

    def _buffered(self) -> int:
        return sum(len(lane.buffer) for lane in self._lanes)

    def _lane_ready(self, lane: _Lane) -> bool:
        if self.config.tumbling and self._window_due(lane):
            return True
        waited = time.monotonic() - lane.since if lane.since is not None else 0.0
        return batch_ready(
            len(lane.buffer),
            batch_size=self.config.batch_size,
            window=self.config.maximum_batching_window_in_seconds,
            waited=waited,
            flush=self._flushing,
            buffered_bytes=lane.size,
            batch_bytes=self.config.maximum_batch_bytes,
        )

    def _start_ready_lanes(self) -> None:
        if self._stopping.is_set():
            return
        for lane in self._lanes:
            if not lane.busy() and self._lane_ready(lane):
                lane.task = asyncio.create_task(self._run_lane(lane), name=f"lane {self._shard_id}")

    def _over_high_water(self) -> bool:
        if self._buffered() > self._high_water:
            return True
        limit = self._high_water_bytes
        return limit > 0 and sum(lane.size for lane in self._lanes) > limit

    async def _wait_below_high_water(self) -> None:
        while self._over_high_water() and not self._stopping.is_set():
            tasks = self._busy_lanes()
            if not tasks:
                return
            await self._wait_lanes(tasks, asyncio.FIRST_COMPLETED, self._next_lane_due())
            self._raise_if_lost()
            self._start_ready_lanes()

    async def _drain(self) -> None:
        while self._buffered() or any(lane.busy() for lane in self._lanes):
            self._raise_if_lost()
            self._start_ready_lanes()
            tasks = self._busy_lanes()
            if tasks:
                await self._wait_lanes(tasks, asyncio.ALL_COMPLETED)
            elif self._stopping.is_set():
                return

    def _busy_lanes(self) -> list[asyncio.Task[None]]:
        return [lane.task for lane in self._lanes if lane.task is not None and lane.busy()]

    async def _wait_lanes(
        self, tasks: Iterable[asyncio.Task[None]], until: str, timeout: float | None = None
    ) -> None:
        """Wait for lanes as ``until`` says, or less: stopping (or lease loss) ends it."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            waiting = asyncio.ensure_future(asyncio.wait(tasks, return_when=until))
            await asyncio.wait(
                {waiting, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            waiting.cancel()
        finally:
            stopping.cancel()

    def _next_lane_due(self) -> float | None:
        """Seconds until an idle lane holding records is due by time (its batching window
        or the tumbling window's end); ``None`` when there is no such lane."""
        idle = [lane.since for lane in self._lanes if lane.since is not None and not lane.busy()]
        if not idle:
            return None
        due = min(idle) + self.config.maximum_batching_window_in_seconds - time.monotonic()
        if self._window is not None:
            due = min(due, self._window.window.end - self._now())
        return max(due, _MIN_WAIT)

    async def _join_lanes(self) -> None:
        tasks = [lane.task for lane in self._lanes if lane.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- one lane ----------------------------------------------------------------------

    async def _run_lane(self, lane: _Lane) -> None:
        try:
            while not self._stopping.is_set() and self._lane_ready(lane):
                if self.config.tumbling and await self._maybe_close_window(lane):
                    continue
                batch = self._cut(lane)
                await self._deliver_guarded(batch)
                if not self.config.tumbling:
                    await self._checkpoint()
        except _Stopped:
            pass
        except ShutdownError:
            self._lost = True
            self._stopping.set()

    def _cut(self, lane: _Lane) -> list[StreamRecord]:
        records = lane.buffer
        if self._window is not None:
            end = self._window.window.end
            records = [r for r in records if _created(r) < end] or records
        batch, _ = cut_batch(records, self.config.batch_size)
        fits = records_within_bytes((r.size_bytes for r in batch), self.config.maximum_batch_bytes)
        if fits >= 0:
            batch = batch[:fits]
            lane.size -= sum(r.size_bytes for r in batch)
        lane.buffer = lane.buffer[len(batch) :]
        if not lane.buffer:
            lane.since = None
            lane.size = 0
        return batch

    async def _deliver_guarded(self, batch: list[StreamRecord]) -> None:
        """Deliver; an unexpected error of ours is retried like a failing handler."""

        def unexpected(error: Exception, failures: int, delay: float) -> None:
            log.exception("shard %s: delivery failed unexpectedly; retrying", self._shard_id)

        ours = replace(self._retry, retriable=lambda e: not isinstance(e, _Stopped | ShutdownError))
        await ours.run(lambda: self._deliver(batch), unexpected)

    async def _deliver(self, batch: list[StreamRecord]) -> None:
        queue = [Attempt(batch, 0)]
        while queue:
            self._check_running()
            attempt = await self._drop_expired(queue.pop(0))
            if not attempt.records:
                continue
            result = await self._invoke(attempt.records)
            attempt = Attempt(attempt.records, attempt.failures, attempt.invocations + 1)
            if result.failed_from is None:
                self._done(attempt.records)
                if self._window is not None:
                    self._window.keep(result.response)
                continue
            plan = plan_failure(
                attempt,
                result.failed_from,
                bisect=self.config.bisect_batch_on_function_error,
                maximum_retry_attempts=self.config.maximum_retry_attempts,
            )
            self._done(plan.done)
            if plan.give_up:
                await self._give_up(
                    plan.give_up, RETRY_ATTEMPTS_EXHAUSTED, plan.invocations, result
                )
            if not self.config.tumbling:
                await self._checkpoint()  # what succeeded before a retry is kept
            if plan.backoff:
                await self._sleep(self._backoff(plan.failures))
            queue[0:0] = plan.next

    def _filtered(self, records: list[StreamRecord]) -> list[StreamRecord]:
        filters = self.config.filters
        if not filters:
            return records
        arn = resolve_arn(self._settings.stream_arn)
        return [r for r in records if filters.matches(lambda_record(r.raw, arn))]

    async def _drop_expired(self, attempt: Attempt[StreamRecord]) -> Attempt[StreamRecord]:
        count = expired_prefix(
            (_created(r) for r in attempt.records),
            self._now(),
            self.config.maximum_record_age_in_seconds,
        )
        if count == 0:
            return attempt
        expired = Verdict(0, "MaximumRecordAgeExceeded", "records older than the maximum age")
        await self._give_up(
            attempt.records[:count], MAXIMUM_RECORD_AGE_EXCEEDED, attempt.invocations, expired
        )
        return Attempt(attempt.records[count:], attempt.failures, attempt.invocations)

    async def _invoke(
        self, records: list[StreamRecord], window: TumblingWindow | None = None
    ) -> Verdict:
        return await self._call(self._shard_id, records, window or self._window_for_call())

    # --- giving up -----------------------------------------------------------------------

    async def _give_up(
        self, records: list[StreamRecord], condition: str, attempts: int, result: Verdict
    ) -> None:
        assert self._failure_path is not None, "DeliveryConfig requires on_failure with limits"
        failed = FailedBatch(
            shard_id=self._shard_id,
            stream_arn=resolve_arn(self._settings.stream_arn),
            records=records,
            condition=condition,
            attempts=attempts,
            error_type=result.error_type,
            error_message=result.error_message,
        )
        await self._failure_path.give_up(failed)
        self._done(records)

    # --- tumbling windows ----------------------------------------------------------------

    def _window_due(self, lane: _Lane) -> bool:
        """The open window is over (by the clock, or a later record is waiting)."""
        waiting = _created(lane.buffer[0]) if lane.buffer else None
        return self._window is not None and self._window.over(self._now(), waiting)

    async def _maybe_close_window(self, lane: _Lane) -> bool:
        """Open a window for the next record, or close the one that is over."""
        if self._window is None:
            if lane.buffer:
                size = self.config.tumbling_window_in_seconds or 1
                self._window = WindowState(window_of(_created(lane.buffer[0]), size))
            return False
        if not self._window_due(lane):
            return False
        if any(_created(r) < self._window.window.end for r in lane.buffer):
            return False  # deliver the window's last records first
        await self._close_window(early=False)
        return True

    def _window_for_call(self, final: bool = False, early: bool = False) -> TumblingWindow | None:
        if self._window is None:
            return None
        start, end = self._window.window.iso()
        return TumblingWindow(start, end, self._shard_id, dict(self._window.state), final, early)

    async def _close_window(self, *, early: bool) -> None:
        """The final invocation of the window (no records), then a checkpoint."""
        window = self._window_for_call(final=True, early=early)

        async def final_call() -> None:
            result = await self._invoke([], window)
            if result.failed_from is not None:
                raise _FinalCallFailed(result.error_message)

        limit = self.config.maximum_retry_attempts
        final = replace(
            self._retry,
            retriable=lambda e: isinstance(e, _FinalCallFailed),
            limit=None if limit == -1 else limit,
        )
        try:
            await final.run(final_call)
        except _FinalCallFailed:
            log.error("shard %s: final window invocation failed; state dropped", self._shard_id)
        self._window = None
        await self._checkpoint()

    # --- checkpoints and helpers ------------------------------------------------------------

    def _done(self, records: list[StreamRecord]) -> None:
        if records:
            self._frontier.mark_done(r.sequence_number for r in records)

    async def _checkpoint(self) -> None:
        """Checkpoint the frontier (serialized: lanes finish in any order)."""
        async with self._checkpoint_lock:
            value = self._frontier.value
            if value is None or value == self._written or self._checkpointer is None:
                return
            try:
                await self._checkpointer.checkpoint_async(value)
            except ShutdownError:
                self._lost = True
                self._stopping.set()
                raise
            except CheckpointError as exc:
                log.warning("shard %s: checkpoint at %s failed: %s", self._shard_id, value, exc)
                return
            self._written = value

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but leave at once when stopping or the lease is lost (records stay undone)."""
        self._check_running()
        if seconds > 0:
            await wait_event(self._stopping, seconds)
        self._check_running()

    def _check_running(self) -> None:
        if self._stopping.is_set():
            raise _Stopped

    def _raise_if_lost(self) -> None:
        if self._lost:
            raise ShutdownError(f"the lease of shard {self._shard_id} was lost")


def _created(record: StreamRecord) -> float:
    return record.approximate_creation_seconds
