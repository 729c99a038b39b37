"""What `shardline status` shows: per shard lease, its owner, checkpoint and lag.

Lag is measured, not guessed: one GetRecords after the checkpoint counts the records
waiting (up to one page) and the age of the oldest of them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.errors import ShardlineError
from shardline.leases.model import LATEST, SHARD_END, TRIM_HORIZON, Lease
from shardline.leases.table import LeaseTable
from shardline.streams.client import StreamsClient, resolve_stream_arn, validate_stream_arn
from shardline.streams.model import Shard

PAGE = 1000


@dataclass(frozen=True)
class ShardStatus:
    """One row of `shardline status`."""

    shard: str
    parent: str | None
    open: bool | None
    owner: str | None
    checkpoint: str
    behind: str
    oldest_waiting_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def gather_status(
    aws: AwsSettings, lease_table: str, *, table: str | None, stream_arn: str | None
) -> tuple[str, list[ShardStatus]]:
    """The stream ARN and one status row per lease, parents first."""
    dynamodb = AwsJsonClient.create("dynamodb", aws)
    streams = StreamsClient(AwsJsonClient.create("dynamodbstreams", aws))
    try:
        if stream_arn is None:
            assert table is not None
            stream_arn = await resolve_stream_arn(dynamodb, table)
        else:
            validate_stream_arn(stream_arn)
        leases_table = LeaseTable(dynamodb, lease_table)
        if not await leases_table.exists():
            return stream_arn, []
        leases = await leases_table.list_leases()
        shards = {s.shard_id: s for s in (await streams.describe_stream(stream_arn)).shards}
        rows = [await _row(streams, stream_arn, lease, shards.get(lease.key)) for lease in leases]
        rows.sort(key=lambda r: r.shard)
        return stream_arn, rows
    finally:
        await dynamodb.close()
        await streams.aws.close()


async def _row(
    streams: StreamsClient, stream_arn: str, lease: Lease, shard: Shard | None
) -> ShardStatus:
    behind, oldest = await _lag(streams, stream_arn, lease, shard)
    return ShardStatus(
        shard=lease.key,
        parent=next(iter(sorted(lease.parent_shard_ids)), None),
        open=None if shard is None else shard.is_open,
        owner=lease.owner,
        checkpoint=lease.checkpoint,
        behind=behind,
        oldest_waiting_seconds=oldest,
    )


async def _lag(
    streams: StreamsClient, stream_arn: str, lease: Lease, shard: Shard | None
) -> tuple[str, float | None]:
    if lease.checkpoint == SHARD_END:
        return "done", None
    if shard is None:
        return "shard gone", None
    if lease.checkpoint == LATEST:
        return "0", None
    try:
        if lease.checkpoint == TRIM_HORIZON:
            iterator = await streams.get_shard_iterator(stream_arn, lease.key, TRIM_HORIZON)
        else:
            iterator = await streams.get_shard_iterator(
                stream_arn, lease.key, "AFTER_SEQUENCE_NUMBER", lease.checkpoint
            )
        page = await streams.get_records(iterator, PAGE)
    except ShardlineError as exc:
        return f"unknown ({type(exc).__name__})", None
    if not page.records:
        return "0", None
    created = page.records[0].dynamodb.ApproximateCreationDateTime
    oldest = None if created is None else max(0.0, time.time() - float(created))
    count = len(page.records)
    more = page.next_iterator is not None and count == PAGE
    return (f"{count}+" if more else str(count)), oldest
