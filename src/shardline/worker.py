"""Worker: wiring and lifecycle of one consumer process.

A worker resolves the stream, makes sure the lease table exists, runs its hooks (the
sinks), keeps leases in step with the shard graph (:class:`ShardSyncer`), holds leases
(:class:`LeaseCoordinator`) and runs one :class:`ShardConsumer` per held lease. Its
background loops are supervised: one that keeps dying stops the worker, and
:meth:`Worker.run` then raises :class:`WorkerFailedError`.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from shardline.aws.client import AwsJsonClient
from shardline.config import ConsumerConfig
from shardline.consumer import ConsumerSettings, EndReason, ShardConsumer
from shardline.errors import WorkerFailedError
from shardline.leases.coordinator import CoordinatorSettings, LeaseCoordinator
from shardline.leases.model import SHARD_END, Lease
from shardline.leases.table import LeaseTable
from shardline.metrics import Metrics
from shardline.processor import ProcessorFactory
from shardline.shard_sync import ShardSyncer
from shardline.streams.client import StreamsClient, resolve_stream_arn, validate_stream_arn
from shardline.streams.followed import FollowedStreams
from shardline.supervisor import Supervisor
from shardline.waiting import wait_event

log = logging.getLogger("shardline.worker")


class WorkerHook(Protocol):
    """Work a worker does around consuming (the sinks: connect, snapshot, close)."""

    async def before_consuming(self, worker: Worker, stop: asyncio.Event) -> None:
        """After the stream and the lease table are ready, before any lease is taken."""

    async def after_close(self) -> None:
        """After the worker stopped consuming (also after a failed start)."""


@dataclass
class _Running:
    consumer: ShardConsumer
    task: asyncio.Task[None]


class Worker:
    """One process's share of the work: leases, shard sync, and shard consumers."""

    def __init__(
        self,
        config: ConsumerConfig,
        processor_factory: ProcessorFactory,
        metrics: Metrics | None = None,
        hooks: tuple[WorkerHook, ...] = (),
    ) -> None:
        self.config = config
        self.hooks = hooks
        self.processor_factory = processor_factory
        self.metrics = metrics or Metrics()
        self.failure: WorkerFailedError | None = None
        self._resolved_arn: str | None = None
        self._running: dict[str, _Running] = {}
        self._executor = ThreadPoolExecutor(
            max_workers=config.processor_threads, thread_name_prefix="shardline-processor"
        )
        self._dynamodb: AwsJsonClient | None = None
        self._streams: StreamsClient | None = None
        self._table: LeaseTable | None = None
        self._coordinator: LeaseCoordinator | None = None
        self._followed: FollowedStreams | None = None
        self._syncer: ShardSyncer | None = None
        self._supervisor = Supervisor(self._loop_failed)
        self._failures: dict[str, int] = {}
        self._stopping = asyncio.Event()
        self._stop = asyncio.Event()
        self._halt = asyncio.Event()  # set by the worker itself: a loop kept dying
        self.started = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully and release the leases.

        Raises :class:`WorkerFailedError` after that shutdown when a background loop
        kept dying (the worker stopped itself).
        """
        self._stop = stop
        try:
            await self._start()
            self.started.set()
            assert self._syncer is not None
            self._supervisor.start("shard sync", self._syncer.run)
            await _first_set(stop, self._halt)
            await self._supervisor.stop()
            await self._shutdown()
        finally:
            await self._close()
        if self.failure is not None:
            raise self.failure

    def _loop_failed(self, name: str, error: BaseException) -> None:
        """A supervised loop kept dying: stop the worker, which then fails. (The caller's
        ``stop`` stays unset: a signal handler may count it as the first signal.)"""
        self.failure = WorkerFailedError(
            f"the worker stopped: its {name} loop kept failing ({error!r})"
        )
        self._halt.set()

    @property
    def stream_arn(self) -> str | None:
        """The stream followed (the latest one once shards were synced)."""
        return self._followed.latest if self._followed is not None else self._resolved_arn

    async def _start(self) -> None:
        cfg = self.config
        # lease renewals and checkpoints end (or fail) well inside a renew interval
        lease_aws = cfg.aws.with_lease_deadlines(cfg.failover_time)
        self._dynamodb = AwsJsonClient.create("dynamodb", lease_aws)
        streams_aws = AwsJsonClient.create("dynamodbstreams", cfg.aws)
        for client in (self._dynamodb, streams_aws):
            client.on_throttle = self._count_throttle
        self._streams = StreamsClient(streams_aws)
        self._resolved_arn = await self._resolve_stream()
        self._followed = FollowedStreams(
            self._streams, self._dynamodb, table=cfg.table, arn=self._resolved_arn
        )
        self._table = LeaseTable(self._dynamodb, cfg.lease_table_name)
        await self._table.ensure_exists()
        self._syncer = ShardSyncer(
            self._streams,
            self._followed,
            self._table,
            starting_position=cfg.starting_position,
            cleanup_leases=cfg.cleanup_leases,
            interval=cfg.shard_sync_interval,
        )
        for hook in self.hooks:
            await hook.before_consuming(self, self._stop)
        await self._syncer.first_sync(self._stop)
        if self._stop.is_set():
            return  # stopped while the first sync was retried: take no lease
        self._coordinator = LeaseCoordinator(
            self._table,
            CoordinatorSettings(
                worker_id=cfg.worker_id,
                failover_time=cfg.failover_time,
                renew_interval=cfg.renew_interval,
                take_interval=cfg.take_interval,
                quiet_interval=cfg.lease_scan_quiet_interval,
                max_leases=cfg.max_leases,
                max_leases_to_steal=cfg.max_leases_to_steal,
                handoff_timeout=cfg.handoff_timeout,
            ),
            on_acquired=self._on_acquired,
            on_lost=self._on_lost,
            on_handoff=self._on_handoff,
            metrics=self.metrics,
            on_fatal=self._loop_failed,
        )
        await self._coordinator.start()
        log.info(
            "worker %s consuming %s with lease table %s",
            cfg.worker_id,
            self.stream_arn,
            cfg.lease_table_name,
        )

    @property
    def dynamodb(self) -> AwsJsonClient:
        """The DynamoDB client (lease table, source table); set once the worker started."""
        assert self._dynamodb is not None, "the worker has not started"
        return self._dynamodb

    async def _resolve_stream(self) -> str:
        assert self._dynamodb is not None
        if self.config.stream_arn is not None:
            validate_stream_arn(self.config.stream_arn)
            return self.config.stream_arn
        assert self.config.table is not None
        return await resolve_stream_arn(self._dynamodb, self.config.table)

    async def _shutdown(self) -> None:
        """Finish in-flight batches, let processors checkpoint, release every lease."""
        coordinator = self._coordinator
        if coordinator is None:
            return
        coordinator.stop_taking()
        self._stopping.set()
        for running in list(self._running.values()):
            running.consumer.request_shutdown()
        tasks = [r.task for r in self._running.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
            if late:
                log.warning(
                    "%d shard(s) still busy after the %.1fs shutdown grace; releasing anyway "
                    "(their unrecorded progress will be redelivered)",
                    len(late),
                    self.config.shutdown_grace,
                )
        await coordinator.stop(release=True)
        log.info("worker %s stopped; leases released", self.config.worker_id)

    async def _close(self) -> None:
        for running in list(self._running.values()):
            running.task.cancel()
        if self._coordinator is not None:
            await self._coordinator.stop(release=False)
        if self._streams is not None:
            await self._streams.aws.close()
        if self._dynamodb is not None:
            await self._dynamodb.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for hook in self.hooks:
            await hook.after_close()

    async def sync_shards(self) -> None:
        """One shard sync now (see :class:`ShardSyncer`)."""
        assert self._syncer is not None, "the worker has not started"
        await self._syncer.sync()

    # --- coordinator callbacks -------------------------------------------------------

    async def _on_acquired(self, lease: Lease, token: str) -> None:
        assert self._streams is not None and self._followed is not None
        try:
            processor = self.processor_factory()
        except Exception:
            log.exception("could not create a processor for shard %s", lease.key)
            assert self._coordinator is not None
            await self._coordinator.release(lease.key)
            return
        consumer = ShardConsumer(
            lease,
            token,
            host=self,
            streams=self._streams,
            processor=processor,
            executor=self._executor,
            settings=ConsumerSettings(
                stream_arn=self._followed.stream_of(lease.key),
                max_records=self.config.max_records,
                idle_time=self.config.idle_time,
                parent_poll_interval=self.config.parent_poll_interval,
                retry_base_delay=self.config.retry_base_delay,
                retry_max_delay=self.config.retry_max_delay,
                call_on_empty=self.config.call_process_records_even_for_empty_list,
                processor_timeout=self.config.processor_timeout,
            ),
            metrics=self.metrics,
        )
        previous = self._running.get(lease.key)
        task = asyncio.create_task(
            self._run_after(previous.task if previous else None, consumer),
            name=f"shard {lease.key}",
        )
        self._running[lease.key] = _Running(consumer, task)

    @staticmethod
    async def _run_after(previous: asyncio.Task[None] | None, consumer: ShardConsumer) -> None:
        """A lease lost and re-taken: the old consumer's last call must end first."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await consumer.run()

    async def _on_lost(self, key: str) -> None:
        running = self._running.get(key)
        if running is not None:
            running.consumer.lease_lost()

    async def _on_handoff(self, key: str) -> None:
        """Another worker asked for this lease; with no consumer running, hand it over now."""
        running = self._running.get(key)
        if running is not None:
            running.consumer.request_handoff()
        elif self._coordinator is not None:
            await self._coordinator.release(key)

    # --- ShardHost: what consumers ask of the worker ------------------------------------

    async def still_holds(self, shard_id: str, token: str) -> bool:
        assert self._coordinator is not None
        return await self._coordinator.still_holds(shard_id, token)

    async def hand_over(self, shard_id: str, token: str) -> None:
        assert self._coordinator is not None
        await self._coordinator.release(shard_id, token)

    async def parents_done(self, lease: Lease) -> bool:
        assert self._syncer is not None
        return await self._syncer.parents_done(lease)

    async def discover_children(self, shard_id: str) -> frozenset[str]:
        """At shard end: list the children at once and create their leases."""
        assert self._syncer is not None
        return await self._syncer.create_child_leases(shard_id)

    async def write_checkpoint(
        self, shard_id: str, token: str, value: str, sub: int, children: frozenset[str] | None
    ) -> None:
        assert self._coordinator is not None
        await self._coordinator.checkpoint(shard_id, token, value, sub, children)
        if value == SHARD_END:
            for running in self._running.values():
                running.consumer.wake()

    async def consumer_finished(self, shard_id: str, token: str, reason: EndReason) -> None:
        """A consumer ended: hand its lease back unless it was lost.

        After a failure the lease is kept for a backoff (1 s doubling to 60 s per shard)
        before it is released, so a persistent failure does not spin.
        """
        assert self._coordinator is not None
        running = self._running.get(shard_id)
        if running is not None and running.consumer.token == token:
            del self._running[shard_id]
            self.metrics.forget_shard(shard_id)
        if reason == EndReason.FAILED:
            failures = self._failures.get(shard_id, 0) + 1
            self._failures[shard_id] = failures
            # hold the lease for a backoff, but not past a shutdown
            await wait_event(self._stopping, min(2 ** (failures - 1), 60))
        else:
            self._failures.pop(shard_id, None)
        if reason not in (EndReason.LEASE_LOST, EndReason.HANDED_OVER):
            await self._coordinator.release(shard_id, token)
        if reason == EndReason.SHARD_ENDED:
            self._coordinator.request_take()
            if self._syncer is not None:  # clean up grandparents whose children have started
                self._syncer.request()

    def health(self) -> dict[str, object]:
        """For health endpoints: ready when leases are held or none are available;
        healthy while leases are being renewed and the table scanned."""
        coordinator = self._coordinator
        if coordinator is None or not self.started.is_set():
            return {"ready": False, "healthy": True, "leases": 0, "detail": "starting"}
        healthy, detail = coordinator.health()
        held = len(coordinator.held_keys())
        ready = held > 0 or coordinator.available_leases() == 0
        return {"ready": ready, "healthy": healthy, "leases": held, "detail": detail}

    def _count_throttle(self, operation: str) -> None:
        self.metrics.aws_throttles.labels(operation).inc()

    # --- views -----------------------------------------------------------------------

    def shard_states(self) -> dict[str, tuple[str, int]]:
        """Per held shard: consumer state and records processed (for status views)."""
        return {
            key: (r.consumer.status, r.consumer.records_processed)
            for key, r in self._running.items()
        }


async def _first_set(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
