"""Helpers for the archive tests: stream records, a started sink, reading files back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shardline.records import StreamRecord
from shardline.sinks.archive import ArchiveSink
from shardline.sinks.base import KeyAttribute, SinkContext
from shardline.sinks.registry import sink_from_url

SHARD = "shardId-00000001700000000000-aaaaaaaa"
T0 = 1_795_000_000.0  # 2026-11-18T11:06:40Z


def change(
    seq: int,
    key: str = "a",
    *,
    name: str = "MODIFY",
    at: float = T0,
    shard: str = SHARD,
    new: dict[str, Any] | None = None,
    ttl: bool = False,
    keys: dict[str, Any] | None = None,
) -> StreamRecord:
    """One stream record in the service's JSON form (key ``pk`` unless ``keys``)."""
    keys = keys or {"pk": {"S": key}}
    data: dict[str, Any] = {
        "Keys": keys,
        "SequenceNumber": str(seq),
        "SizeBytes": 60,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        "ApproximateCreationDateTime": at,
    }
    if name != "REMOVE":
        data["NewImage"] = new or {**keys, "v": {"N": str(seq)}, "s": {"S": "x"}}
    if name != "INSERT":
        data["OldImage"] = {**keys, "v": {"N": str(seq - 1)}}
    raw: dict[str, Any] = {"eventID": f"e{seq}", "eventName": name, "dynamodb": data}
    if ttl:
        raw["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return StreamRecord(raw, shard)


def context(table: str = "Orders", aws: Any = None) -> SinkContext:
    return SinkContext(
        table=table,
        stream_arn=f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/x",
        key_schema=(KeyAttribute("pk", "S"),),
        application="app",
        aws=aws,
        stream_view_type="NEW_AND_OLD_IMAGES",
    )


def started(url: str, ctx: SinkContext | None = None) -> ArchiveSink:
    sink = sink_from_url(url)
    assert isinstance(sink, ArchiveSink)
    asyncio.run(sink.start(ctx or context()))
    return sink


def write(sink: ArchiveSink, records: Sequence[StreamRecord], shard: str = SHARD) -> None:
    async def run() -> None:
        await sink.open_shard(shard).write(records)

    asyncio.run(run())


def archived_files(root: Path) -> list[Path]:
    """Every file under ``root`` a reader would see (hidden names left out)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
