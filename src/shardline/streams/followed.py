"""The streams a worker reads: one ARN, or every generation of a table's stream.

Given a stream ARN, that stream is read and nothing else. Given a table, the set starts
with the table's latest stream plus any older stream the lease table still has leases
for, and grows when the table's stream is disabled and re-enabled (a new ARN). Older
streams are dropped once drained and their leases cleaned up. The rules for which
stream gets leases live in :mod:`shardline.streams.tracking`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from shardline.aws.client import AwsJsonClient
from shardline.errors import ResourceNotFoundError
from shardline.leases.model import Lease
from shardline.streams.client import StreamsClient
from shardline.streams.tracking import TrackedStream, has_leases, is_drained

log = logging.getLogger("shardline.streams")


class FollowedStreams:
    """Which streams to read, and which stream each shard belongs to."""

    def __init__(
        self, streams: StreamsClient, dynamodb: AwsJsonClient, *, table: str | None, arn: str
    ) -> None:
        self._streams = streams
        self._dynamodb = dynamodb
        self.table = table
        self.arns: list[str] = [arn]
        self._stream_of: dict[str, str] = {}

    @property
    def latest(self) -> str:
        """The newest stream ARN followed."""
        return self.arns[-1]

    def stream_of(self, shard_id: str) -> str:
        """The stream a shard belongs to (the latest when it was never listed)."""
        return self._stream_of.get(shard_id, self.latest)

    async def adopt_older_streams(self, leases: Mapping[str, Lease]) -> None:
        """At start: older streams of the table that the lease table still tracks."""
        if self.table is None or not leases:
            return
        listed = await self._streams.list_streams(self.table)
        older = [
            s["StreamArn"] for s in sorted(listed, key=_label) if s["StreamArn"] != self.latest
        ]
        for arn in older:
            stream = await self._describe(arn)
            if stream is not None and has_leases(stream, leases):
                log.info("resuming the drain of %s before following %s", arn, self.latest)
                self.arns.insert(len(self.arns) - 1, arn)

    async def refresh(self) -> list[TrackedStream]:
        """Describe every followed stream (oldest first), noticing a new table stream."""
        await self._notice_new_stream()
        described: list[TrackedStream] = []
        for arn in list(self.arns):
            stream = await self._describe(arn)
            if stream is None:
                if arn != self.latest:
                    self.arns.remove(arn)
                continue
            described.append(stream)
            for shard in stream.shards:
                self._stream_of[shard.shard_id] = arn
        return described

    def drop_drained(
        self, described: list[TrackedStream], leases: Mapping[str, Lease], pending: set[str]
    ) -> None:
        """Stop following older streams whose every shard was read to its end."""
        for stream in described:
            if stream.arn == self.latest:
                continue
            has_pending = any(shard.shard_id in pending for shard in stream.shards)
            if is_drained(stream, leases, pending=has_pending):
                log.info("drained %s; following only newer streams now", stream.arn)
                self.arns.remove(stream.arn)

    async def _notice_new_stream(self) -> None:
        if self.table is None:
            return
        answer = await self._dynamodb.call("DescribeTable", {"TableName": self.table})
        table = answer.get("Table") or {}
        arn = table.get("LatestStreamArn")
        enabled = (table.get("StreamSpecification") or {}).get("StreamEnabled", False)
        if arn and enabled and arn not in self.arns:
            log.warning(
                "table %s has a new stream %s (the stream was disabled and re-enabled); "
                "draining %s to its end first, then following the new stream from its start",
                self.table,
                arn,
                self.latest,
            )
            self.arns.append(str(arn))

    async def _describe(self, arn: str) -> TrackedStream | None:
        try:
            description = await self._streams.describe_stream(arn)
        except ResourceNotFoundError:
            log.warning("stream %s no longer exists", arn)
            return None
        return TrackedStream(arn, description.shards)


def _label(stream: Mapping[str, str]) -> str:
    return stream.get("StreamLabel", "")
