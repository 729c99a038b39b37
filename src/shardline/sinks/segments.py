"""The snapshot's segment table: one item per parallel-Scan segment, leased like a shard.

The table sits beside the lease table (``<lease table>-snapshot``), never inside it, so
KCL-style readers of the lease table see no foreign items. Each item:

==================  ================================================================
``leaseKey``        ``segment-3-of-8``
``leaseOwner``      the worker copying it (absent: free)
``leaseCounter``    bumped by every write of the owner; the fence, as in the lease table
``position``        the Scan's ``LastEvaluatedKey`` as JSON (absent: from the start)
``itemsCopied``     items written so far (the next item's ordinal)
``done``            the segment has been copied to the end
``totalSegments``   the Scan's ``TotalSegments``
==================  ================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from shardline.errors import ConditionalCheckFailedError
from shardline.leases.table import LeaseTable

if TYPE_CHECKING:
    from shardline.aws.client import AwsJsonClient

__all__ = ["Segment", "SegmentTable", "segment_key"]


def segment_key(index: int, total: int) -> str:
    """The item key of segment ``index`` of ``total``."""
    return f"segment-{index}-of-{total}"


@dataclass(frozen=True)
class Segment:
    """One segment's item as read."""

    index: int
    total: int
    owner: str | None
    counter: int
    position: dict[str, Any] | None
    copied: int
    done: bool

    @property
    def key(self) -> str:
        """The item key."""
        return segment_key(self.index, self.total)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Segment:
        """Parse a DynamoDB item of the segment table."""
        position = item.get("position", {}).get("S")
        return cls(
            index=int(item["segment"]["N"]),
            total=int(item["totalSegments"]["N"]),
            owner=item.get("leaseOwner", {}).get("S"),
            counter=int(item["leaseCounter"]["N"]),
            position=orjson.loads(position) if position else None,
            copied=int(item.get("itemsCopied", {}).get("N", "0")),
            done=bool(item.get("done", {}).get("BOOL", False)),
        )


class SegmentTable:
    """Conditional reads and writes of the segment table."""

    def __init__(self, dynamodb: AwsJsonClient, name: str) -> None:
        self.dynamodb = dynamodb
        self.name = name

    async def ensure(self, total: int) -> list[Segment]:
        """Create the table and the segments (once; a later run keeps its own count)."""
        await LeaseTable(self.dynamodb, self.name).ensure_exists()
        existing = await self.list()
        if existing:
            return existing
        for index in range(total):
            item = {
                "leaseKey": {"S": segment_key(index, total)},
                "segment": {"N": str(index)},
                "totalSegments": {"N": str(total)},
                "leaseCounter": {"N": "0"},
                "itemsCopied": {"N": "0"},
                "done": {"BOOL": False},
            }
            try:
                await self.dynamodb.call(
                    "PutItem",
                    {
                        "TableName": self.name,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(leaseKey)",
                    },
                )
            except ConditionalCheckFailedError:
                pass  # another worker created it first
        return await self.list()

    async def list(self) -> list[Segment]:
        """Every segment (a consistent Scan)."""
        segments: list[Segment] = []
        params: dict[str, Any] = {"TableName": self.name, "ConsistentRead": True}
        while True:
            answer = await self.dynamodb.call("Scan", params)
            segments += [Segment.from_item(item) for item in answer.get("Items", [])]
            last = answer.get("LastEvaluatedKey")
            if not last:
                return sorted(segments, key=lambda s: s.index)
            params["ExclusiveStartKey"] = last

    async def take(self, segment: Segment, owner: str) -> Segment | None:
        """Become the owner if the counter is still what we saw; ``None`` when someone was first."""
        return await self._update(
            segment,
            "SET leaseOwner = :owner, leaseCounter = :next",
            {":owner": {"S": owner}},
            expect_owner=None,
            new_owner=owner,
        )

    async def progress(
        self, segment: Segment, position: dict[str, Any] | None, copied: int
    ) -> Segment | None:
        """Record a copied page (or the end when ``position`` is ``None``); ``None``: lost."""
        done = position is None
        expression = "SET leaseCounter = :next, itemsCopied = :copied, done = :done"
        values: dict[str, Any] = {
            ":copied": {"N": str(copied)},
            ":done": {"BOOL": done},
        }
        if position is not None:
            expression += ", #position = :position"
            values[":position"] = {"S": orjson.dumps(position).decode()}
        if done:
            expression += " REMOVE leaseOwner"
        updated = await self._update(
            segment, expression, values, expect_owner=segment.owner, names={"#position": "position"}
            if position is not None else None,
            new_owner=None if done else segment.owner,
        )  # fmt: skip
        if updated is None:
            return None
        return Segment(
            segment.index, segment.total, updated.owner, updated.counter,
            position, copied, done,
        )  # fmt: skip

    async def renew(self, segment: Segment) -> Segment | None:
        """Bump the counter (the owner is alive); ``None`` when the segment was taken."""
        return await self._update(
            segment, "SET leaseCounter = :next", {}, expect_owner=segment.owner,
            new_owner=segment.owner,
        )  # fmt: skip

    async def _update(
        self,
        segment: Segment,
        expression: str,
        values: dict[str, Any],
        *,
        expect_owner: str | None,
        new_owner: str | None,
        names: dict[str, str] | None = None,
    ) -> Segment | None:
        condition = "leaseCounter = :counter"
        values = {
            **values,
            ":counter": {"N": str(segment.counter)},
            ":next": {"N": str(segment.counter + 1)},
        }
        if expect_owner is not None:
            condition += " AND leaseOwner = :expected"
            values[":expected"] = {"S": expect_owner}
        params: dict[str, Any] = {
            "TableName": self.name,
            "Key": {"leaseKey": {"S": segment.key}},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            params["ExpressionAttributeNames"] = names
        try:
            await self.dynamodb.call("UpdateItem", params)
        except ConditionalCheckFailedError:
            if not await self._landed(segment, new_owner):
                return None
        return Segment(
            segment.index, segment.total, new_owner, segment.counter + 1,
            segment.position, segment.copied, segment.done,
        )  # fmt: skip

    async def _landed(self, segment: Segment, owner: str | None) -> bool:
        """A retried write may have landed before its retry failed the condition."""
        answer = await self.dynamodb.call(
            "GetItem",
            {
                "TableName": self.name,
                "Key": {"leaseKey": {"S": segment.key}},
                "ConsistentRead": True,
            },
        )
        item = answer.get("Item")
        if not item:
            return False
        current = Segment.from_item(item)
        return current.counter == segment.counter + 1 and current.owner == owner


async def snapshot_progress(aws: object, segment_table: str) -> dict[str, int] | None:
    """Segments done, segments in all and items copied; ``None`` when no snapshot was asked."""
    from shardline.aws.client import AwsJsonClient
    from shardline.aws.settings import AwsSettings

    assert isinstance(aws, AwsSettings)
    dynamodb = AwsJsonClient.create("dynamodb", aws)
    try:
        if not await LeaseTable(dynamodb, segment_table).exists():
            return None
        segments = await SegmentTable(dynamodb, segment_table).list()
    finally:
        await dynamodb.close()
    return {
        "segments_done": sum(s.done for s in segments),
        "segments": len(segments),
        "items_copied": sum(s.copied for s in segments),
    }
