"""One shard's batch into every sink of a run: the invoker the delivery path calls.

The user's handler (if any) runs first; then every sink writes the batch, concurrently,
each through its own filter. The call returns only when every sink has made the batch
durable, so the delivery path checkpoints a batch only when all sinks hold it. A sink
that fails fails the call: the batch is retried (sinks that already hold it are
idempotent under replay). Push-back (:class:`SinkError` with ``retriable``) is raised
as it is; :class:`~shardline.delivery.processor.DeliveryProcessor` waits and retries it
without counting an attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from shardline.delivery.filters import FilterSet
from shardline.delivery.invoke import StreamArn, TumblingWindow, call_handler, resolve_arn
from shardline.lambda_compat import lambda_record
from shardline.metrics import Metrics
from shardline.records import StreamRecord
from shardline.sinks.base import ShardSink, Sink

__all__ = ["SinkFanout", "SinkRoute"]


class SinkRoute:
    """A sink with the filter that chooses its records (an empty filter passes all)."""

    def __init__(self, sink: Sink, filters: FilterSet | None = None) -> None:
        self.sink = sink
        self.filters = filters

    def select(self, records: Sequence[StreamRecord], arn: str) -> Sequence[StreamRecord]:
        """The records this sink receives."""
        if not self.filters:
            return records
        return [r for r in records if self.filters.matches(lambda_record(r.raw, arn))]


class SinkFanout:
    """One shard's invoker: handler first, then every sink; close on lease end."""

    def __init__(
        self,
        routes: Sequence[SinkRoute],
        handler: Callable[..., Any] | None,
        stream_arn: StreamArn,
        metrics: Metrics,
    ) -> None:
        self._routes = list(routes)
        self._handler = handler
        self._stream_arn = stream_arn
        self._metrics = metrics
        self._writers: dict[str, list[ShardSink]] = {}

    async def __call__(self, records: list[StreamRecord], window: TumblingWindow | None) -> Any:
        response = None
        if self._handler is not None:
            response = await (
                call_handler(self._handler, records)
                if window is None
                else call_handler(self._handler, records, window)
            )
        if records:
            await self._write_all(records)
        return response

    async def _write_all(self, records: list[StreamRecord]) -> None:
        writers = self._writers_for(records[0].shard_id)
        arn = resolve_arn(self._stream_arn) if any(r.filters for r in self._routes) else ""
        jobs = [
            self._write_one(route, writer, route.select(records, arn))
            for route, writer in zip(self._routes, writers, strict=True)
        ]
        if len(jobs) == 1:
            await jobs[0]
            return
        results = await asyncio.gather(*jobs, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:  # a permanent failure decides the batch's fate before a push-back
            raise min(errors, key=lambda e: bool(getattr(e, "retriable", False)))

    async def _write_one(
        self, route: SinkRoute, writer: ShardSink, records: Sequence[StreamRecord]
    ) -> None:
        if not records:
            return
        name = route.sink.name
        started = time.perf_counter()
        try:
            await writer.write(records)
        except Exception:
            self._metrics.sink_write_failures.labels(name).inc()
            raise
        self._metrics.sink_write_seconds.labels(name).observe(time.perf_counter() - started)
        self._metrics.sink_records_written.labels(name).inc(len(records))

    def _writers_for(self, shard_id: str) -> list[ShardSink]:
        writers = self._writers.get(shard_id)
        if writers is None:
            writers = [route.sink.open_shard(shard_id) for route in self._routes]
            self._writers[shard_id] = writers
        return writers

    async def close(self, *, lost: bool) -> None:
        """The lease ended: tell every shard writer (``lost``: stop writing at once)."""
        writers, self._writers = self._writers, {}
        for shard_writers in writers.values():
            for writer in shard_writers:
                await writer.close(lost=lost)
