"""Snapshot, then stream: copy the whole source table into the sinks before following it.

The table is read with a parallel Scan of ``segments`` segments. Segments are leased in
the segment table (:mod:`.segments`) like shards: every worker of the application takes
free or expired segments, copies them page by page, and records its position after each
page, so a crashed worker's segment resumes from its last page, not from scratch. A
worker starts following the stream only when every segment is done.

Snapshot rows are older than any stream change (sequence number 0 in the replicas), and
a page written twice (a crash between the write and the position) is written the same
way again: the copy is idempotent. The stream is read from ``TRIM_HORIZON`` afterwards,
so every change made while the scan ran is applied over the copied rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from shardline.errors import ShardlineError
from shardline.leases.expiry import ExpiryTracker
from shardline.metrics import Metrics
from shardline.retry import Backoff, Retry, Stopped, pause_until
from shardline.sinks.base import Sink, SinkContext, SinkError, SnapshotRow
from shardline.sinks.segments import Segment, SegmentTable
from shardline.supervisor import Supervisor

if TYPE_CHECKING:
    from shardline.aws.client import AwsJsonClient

log = logging.getLogger("shardline.snapshot")

__all__ = ["SnapshotRun", "pick_segments"]

_PAGE_LIMIT = 1000
_MAX_BACKOFF = 30.0


def pick_segments(
    segments: Sequence[Segment],
    expired: set[str],
    me: str,
    held: Collection[str],
    parallel: int,
) -> list[Segment]:
    """Which segments to take now: not done, not ``held`` by this run, up to ``parallel``.

    A segment is free, expired, or owned by ``me`` but not held: left by an earlier
    process with the same worker id, which crashed.
    """
    room = parallel - len(held)
    if room <= 0:
        return []
    free = [
        s
        for s in segments
        if not s.done
        and s.key not in held
        and (s.owner is None or s.owner == me or s.key in expired)
    ]
    return free[:room]


class SnapshotRun:
    """One worker's part of the snapshot; :meth:`run` returns when every segment is done."""

    def __init__(
        self,
        dynamodb: AwsJsonClient,
        context: SinkContext,
        sinks: Sequence[Sink],
        *,
        worker_id: str,
        segment_table: str,
        segments: int = 8,
        parallel: int = 2,
        failover_time: float = 10.0,
        metrics: Metrics | None = None,
        page_limit: int = _PAGE_LIMIT,
    ) -> None:
        self.dynamodb = dynamodb
        self.context = context
        self.sinks = list(sinks)
        self.worker_id = worker_id
        self.table = SegmentTable(dynamodb, segment_table)
        self.segments = segments
        self.parallel = parallel
        self.failover_time = failover_time
        self.metrics = metrics or Metrics()
        self.page_limit = page_limit
        self._expiry = ExpiryTracker(failover_time)

    async def run(self, stop: asyncio.Event) -> None:
        """Copy segments until all are done (by any worker) or ``stop`` is set."""
        segments = await self.table.ensure(self.segments)
        if all(s.done for s in segments):
            return
        log.info("snapshot of %s: %d segments to copy", self.context.table, len(segments))
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while not stop.is_set():
                segments = await self.table.list()
                if all(s.done for s in segments):
                    break
                self._start_takes(segments, running, stop)
                await _wait_for_any(stop, running.values(), self.failover_time / 4)
                for key in [k for k, t in running.items() if t.done()]:
                    running.pop(key).result()  # a copy that failed unexpectedly stops us
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
        if not stop.is_set():
            log.info("snapshot of %s: every segment is copied", self.context.table)

    def _start_takes(
        self, segments: list[Segment], running: dict[str, asyncio.Task[None]], stop: asyncio.Event
    ) -> None:
        now = time.monotonic()
        self._expiry.observe(segments, now)
        expired = {s.key for s in segments if self._expiry.is_expired(s.key, now)}
        for segment in pick_segments(segments, expired, self.worker_id, running, self.parallel):
            running[segment.key] = asyncio.create_task(
                self._take_and_copy(segment, stop), name=f"snapshot {segment.key}"
            )

    async def _take_and_copy(self, segment: Segment, stop: asyncio.Event) -> None:
        taken = await self.table.take(segment, self.worker_id)
        if taken is None:
            return
        log.info("snapshot: copying %s from item %d", taken.key, taken.copied)
        await _CopyLoop(self, taken, stop).run()


async def _wait_for_any(
    stop: asyncio.Event, tasks: Iterable[asyncio.Task[None]], timeout: float
) -> None:
    """Until ``stop`` is set, a copy ends, or ``timeout`` passes (to look for free segments)."""
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([stopper, *tasks], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()


def _log_retry(error: Exception, failures: int, delay: float) -> None:
    retriable = isinstance(error, SinkError) and error.retriable
    level = logging.WARNING if retriable else logging.ERROR
    log.log(level, "snapshot: %s; retrying in %.1fs", error, delay)


class _CopyLoop:
    """Copies one held segment page by page, renewing it while a write is slow."""

    def __init__(self, run: SnapshotRun, segment: Segment, stop: asyncio.Event) -> None:
        self.run_ = run
        self.segment: Segment | None = segment
        self.stop = stop
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        assert self.segment is not None
        renewals = Supervisor(self._renewals_failed)
        renewals.start(f"snapshot renewal of {self.segment.key}", self._renew_loop)
        try:
            await self._copy()
        finally:
            await renewals.stop()

    def _renewals_failed(self, name: str, error: BaseException) -> None:
        """The segment can no longer be renewed: stop copying it (it expires, and a
        worker takes it over from its last recorded page)."""
        self.segment = None

    async def _copy(self) -> None:
        while self.segment is not None and not self.stop.is_set():
            segment = self.segment
            items, position = await self._scan_page(segment)
            rows = [
                SnapshotRow(item, segment.index, segment.copied + i) for i, item in enumerate(items)
            ]
            if not await self._write(rows):
                return  # stopped before every sink had the page: it is not recorded
            async with self._lock:
                if self.segment is None:
                    return
                self.segment = await self.run_.table.progress(
                    self.segment, position, segment.copied + len(rows)
                )
            self.run_.metrics.snapshot_items_copied.inc(len(rows))
            if self.segment is None:
                log.warning("snapshot: %s was taken by another worker", segment.key)
                return
            if position is None:
                self.run_.metrics.snapshot_segments_done.inc()
                log.info("snapshot: %s done (%d items)", segment.key, self.segment.copied)
                return

    async def _scan_page(
        self, segment: Segment
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        params: dict[str, Any] = {
            "TableName": self.run_.context.table,
            "Segment": segment.index,
            "TotalSegments": segment.total,
            "Limit": self.run_.page_limit,
            "ConsistentRead": True,
        }
        if segment.position is not None:
            params["ExclusiveStartKey"] = segment.position
        answer = await self.run_.dynamodb.call("Scan", params)
        return list(answer.get("Items", [])), answer.get("LastEvaluatedKey") or None

    async def _write(self, rows: list[SnapshotRow]) -> bool:
        """Write the page to every snapshot sink; a busy or failing sink is retried.

        Returns whether every sink has the page (``False``: stopped before).
        """
        retry = Retry(
            Backoff(0.5, _MAX_BACKOFF),
            pause=pause_until(self.stop),
            retriable=lambda e: isinstance(e, SinkError),
        )
        for sink in self.run_.sinks:
            if self.stop.is_set():
                return False
            try:
                await retry.run(partial(sink.write_snapshot, rows), _log_retry)
            except Stopped:
                return False
        return True

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.run_.failover_time / 3)
            async with self._lock:
                segment = self.segment
                if segment is None:
                    return
                try:
                    self.segment = await self.run_.table.renew(segment)
                except ShardlineError as exc:  # the next renewal tries again
                    log.warning("snapshot: renewing %s failed: %s", segment.key, exc)
