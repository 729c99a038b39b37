"""Plain data shapes shared by the Streams client and the shard-graph rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shardline.streams.wire import WireRecord


@dataclass(frozen=True, slots=True)
class Shard:
    """One shard as DescribeStream reports it."""

    shard_id: str
    parent_shard_id: str | None = None
    starting_sequence_number: str | None = None
    ending_sequence_number: str | None = None

    @property
    def is_open(self) -> bool:
        """A shard is open (still written to) until it has an ending sequence number."""
        return self.ending_sequence_number is None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Shard:
        """A shard from DescribeStream's ``Shard`` shape."""
        seq_range = data.get("SequenceNumberRange") or {}
        return cls(
            shard_id=data["ShardId"],
            parent_shard_id=data.get("ParentShardId"),
            starting_sequence_number=seq_range.get("StartingSequenceNumber"),
            ending_sequence_number=seq_range.get("EndingSequenceNumber"),
        )


@dataclass(frozen=True, slots=True)
class StreamDescription:
    """A stream with every shard DescribeStream listed (all pages)."""

    stream_arn: str
    stream_status: str
    stream_view_type: str | None
    table_name: str | None
    shards: tuple[Shard, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class RecordsPage:
    """One GetRecords answer: wire records, and the next iterator (None at shard end)."""

    records: list[WireRecord]
    next_iterator: str | None
