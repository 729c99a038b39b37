"""ShardConsumer: one held lease, from waiting for its parents to its end.

The consumer is the state machine (:class:`ConsumerState`, :class:`EndReason`); reading
is its :class:`ShardReader`'s, calling the processor its :class:`ProcessorLane`'s. The
worker signals it (lease lost, shutdown, handoff, wake); every wait ends at a signal.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor

from shardline.consumer.host import ConsumerSettings, ShardHost
from shardline.consumer.lane import ProcessorLane
from shardline.consumer.reader import ShardReader, patient_retry
from shardline.consumer.signals import HandoffRequested, LeaseLost, ShutdownRequested, Signals
from shardline.consumer.state import ConsumerState, EndReason
from shardline.errors import ResourceNotFoundError
from shardline.leases.model import SHARD_END, Lease
from shardline.metrics import Metrics
from shardline.processor import AnyProcessor
from shardline.streams.client import StreamsClient

log = logging.getLogger("shardline.consumer")

__all__ = ["ShardConsumer"]


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
        self.end_reason: EndReason | None = None
        metrics = metrics or Metrics()
        self._host = host
        self._settings = settings
        self._signals = Signals()
        self._reader = ShardReader(
            lease, streams=streams, settings=settings, signals=self._signals, metrics=metrics
        )
        self._lane = ProcessorLane(
            lease.key,
            processor,
            executor=executor,
            settings=settings,
            signals=self._signals,
            metrics=metrics,
        )
        self._children: frozenset[str] | None = None

    @property
    def records_processed(self) -> int:
        return self._lane.records_processed

    @property
    def trim_events(self) -> int:
        """How often records may have been lost (trimmed, or the shard expired)."""
        return self._reader.trim_events

    @property
    def status(self) -> str:
        """The state, or once ended the reason (for status views)."""
        return self.end_reason.value if self.end_reason is not None else self.state.value

    # --- signals from the worker -----------------------------------------------------

    def lease_lost(self) -> None:
        self._signals.lease_lost()
        self._lane.stop_checkpoints()

    def request_shutdown(self) -> None:
        self._signals.request_shutdown()

    def request_handoff(self) -> None:
        """Another worker asked for the lease: stop fetching, let the batch in flight
        finish, then hand over (see :meth:`_hand_over`)."""
        self._signals.request_handoff()

    def wake(self) -> None:
        """Something changed (a parent finished): re-check without waiting for the poll."""
        self._signals.wake()

    # --- the state machine -----------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._wait_for_parents()
            await self._initialize()
            reason = await self._consume()
        except LeaseLost:
            reason = EndReason.LEASE_LOST
            await self._lane.lease_lost()
        except HandoffRequested:
            reason = await self._hand_over()
        except ShutdownRequested:
            reason = await self._shutdown()
        except Exception:
            log.exception("shard %s: consumer failed; the lease will be released", self.shard_id)
            reason = EndReason.FAILED
        self.state = ConsumerState.ENDED
        self.end_reason = reason
        await self._host.consumer_finished(self.shard_id, self.token, reason)

    async def _wait_for_parents(self) -> None:
        """Wait for the parents; a shard that waited reads its lease again before it
        starts (one consistent read) and stops quietly if the lease moved meanwhile."""
        waited = False
        while not await self._host.parents_done(self.lease):
            waited = True
            await self._signals.pause(self._settings.parent_poll_interval)
        self._signals.check()
        if not waited:
            return
        patient = patient_retry(self.shard_id, self._settings, self._signals)
        if not await patient.run(lambda: self._host.still_holds(self.shard_id, self.token)):
            raise LeaseLost

    async def _initialize(self) -> None:
        self.state = ConsumerState.INITIALIZING
        await self._lane.initialize(self.lease, self._write_checkpoint)

    async def _consume(self) -> EndReason:
        if self.lease.checkpoint == SHARD_END:
            return EndReason.SHARD_ENDED
        try:
            await self._read_to_end()
        except ResourceNotFoundError:
            log.error(
                "shard %s is gone from the stream (expired after its retention) while its "
                "lease was at %s; records after that were never read and may be LOST. "
                "Ending the shard so its children can start.",
                self.shard_id,
                self._reader.position or self.lease.checkpoint,
            )
            self._reader.count_possible_loss()
        await self._end_shard()
        return EndReason.SHARD_ENDED

    async def _read_to_end(self) -> None:
        await self._reader.start()
        self.state = ConsumerState.PROCESSING
        while (page := await self._reader.next_page()) is not None:
            if page.records or self._settings.call_on_empty:
                await self._lane.deliver(page.records, page.millis_behind)

    async def _end_shard(self) -> None:
        """Children get leases at once, then the processor must checkpoint SHARD_END."""
        self.state = ConsumerState.SHARD_ENDING
        self._children = await self._host.discover_children(self.shard_id)
        await self._lane.end_shard()

    async def _write_checkpoint(self, value: str, sub: int) -> None:
        children = self._children if value == SHARD_END else None
        await self._host.write_checkpoint(self.shard_id, self.token, value, sub, children)

    async def _shutdown(self) -> EndReason:
        self.state = ConsumerState.SHUTTING_DOWN
        await self._lane.last_word()
        return EndReason.SHUTDOWN

    async def _hand_over(self) -> EndReason:
        """As KCL 3's graceful handoff: ``shutdown_requested`` (the processor checkpoints),
        then the lease goes to the worker that asked, then ``lease_lost``."""
        self.state = ConsumerState.HANDING_OVER
        await self._lane.last_word()
        self._lane.stop_checkpoints()
        await self._host.hand_over(self.shard_id, self.token)
        await self._lane.lease_lost()
        return EndReason.HANDED_OVER
