"""Sinks in a worker's life: learn the source's key, start every sink, snapshot, close.

:class:`SinkRuntime` is a :class:`~shardline.worker.WorkerHook`: once the worker has
resolved the stream and the lease table, it describes the source table, starts every
sink (a sink that cannot start stops the worker with one line naming it), copies the
table first when a sink asks for a snapshot, and closes the sinks when the worker ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shardline.errors import ConfigError
from shardline.metrics import Metrics
from shardline.sinks.base import KeyAttribute, Sink, SinkContext

if TYPE_CHECKING:
    from shardline.aws.client import AwsJsonClient
    from shardline.worker import Worker

log = logging.getLogger("shardline.sinks")

__all__ = ["SinkRuntime", "describe_source", "table_of_stream_arn"]


class SinkRuntime:
    """Starts, snapshots into and closes the sinks of one worker."""

    def __init__(
        self, sinks: Sequence[Sink], metrics: Metrics, *, snapshot_segments: int = 8
    ) -> None:
        self.sinks = list(sinks)
        self.metrics = metrics
        self.snapshot_segments = snapshot_segments
        self.context: SinkContext | None = None

    async def before_consuming(self, worker: Worker, stop: asyncio.Event) -> None:
        """Describe the source, start the sinks, run the snapshot when one is asked for."""
        config = worker.config
        table = config.table or table_of_stream_arn(worker.stream_arn or "")
        self.context = await describe_source(
            worker.dynamodb, table, worker.stream_arn or "", config.application, config.aws
        )
        for sink in self.sinks:
            await sink.start(self.context)
            log.info("sink %s ready", sink.name)
        wanting = [sink for sink in self.sinks if sink.snapshot]
        if wanting:
            from shardline.sinks.snapshot import SnapshotRun

            await SnapshotRun(
                worker.dynamodb,
                self.context,
                wanting,
                worker_id=config.worker_id,
                segment_table=snapshot_table_name(config.lease_table_name),
                segments=self.snapshot_segments,
                failover_time=config.failover_time,
                metrics=self.metrics,
            ).run(stop)

    async def after_close(self) -> None:
        """Close every sink (their connections)."""
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception:
                log.exception("sink %s did not close cleanly", sink.name)


def snapshot_table_name(lease_table: str) -> str:
    """The table that tracks snapshot segments beside the lease table (never inside it)."""
    return f"{lease_table}-snapshot"


def table_of_stream_arn(arn: str) -> str:
    """``Orders`` of ``arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026-...``."""
    _, _, rest = arn.partition(":table/")
    table = rest.split("/stream/")[0]
    if not table:
        raise ConfigError(f"cannot tell the table of stream {arn!r}")
    return table


async def describe_source(
    dynamodb: AwsJsonClient, table: str, stream_arn: str, application: str, aws: Any = None
) -> SinkContext:
    """The :class:`SinkContext` of ``table``: key schema with types, stream view type."""
    from shardline.errors import ResourceNotFoundError

    try:
        answer = await dynamodb.call("DescribeTable", {"TableName": table})
    except ResourceNotFoundError as exc:
        raise ConfigError(f"source table {table!r} was not found") from exc
    description: dict[str, Any] = answer.get("Table") or {}
    return SinkContext(
        table=table,
        stream_arn=stream_arn or str(description.get("LatestStreamArn") or ""),
        key_schema=key_schema_of(description),
        application=application,
        region=dynamodb.region,
        aws=aws,
        stream_view_type=str(
            (description.get("StreamSpecification") or {}).get("StreamViewType") or ""
        ),
    )


def key_schema_of(description: dict[str, Any]) -> tuple[KeyAttribute, ...]:
    """The key attributes of a DescribeTable ``Table``, hash key first, with their types."""
    types = {d["AttributeName"]: d["AttributeType"] for d in description["AttributeDefinitions"]}
    schema = sorted(description["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    return tuple(
        KeyAttribute(k["AttributeName"], types[k["AttributeName"]], k["KeyType"]) for k in schema
    )
