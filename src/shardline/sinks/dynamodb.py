"""Replication into another DynamoDB table (``dynamodb://Table?region=...&endpoint_url=...``).

Every change is one TransactWriteItems of two actions, conditional on sequence numbers:

* INSERT / MODIFY / snapshot row: Put the item (with the change's sequence number in
  ``sequence_attribute``) if the target item is older, and check that the key's tombstone
  (in ``<Table>-tombstones``) is older too;
* REMOVE: Delete the item if it is older, and Put the tombstone if it is older.

A cancelled transaction whose reasons are only ``ConditionalCheckFailed`` means the target
already holds something newer: the change is skipped, which is exactly the replay case.
Sequence numbers are stored as 40-digit zero-padded strings (string order is number
order); snapshot rows carry 0, older than any change. A transaction costs twice the write
units of a plain put; that is the price of never bringing a deleted item back.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from shardline.errors import (
    AwsError,
    ConfigError,
    ResourceNotFoundError,
    ShardlineError,
)
from shardline.records import StreamRecord
from shardline.sinks.base import ShardSink, Sink, SinkContext, SinkError, SnapshotRow
from shardline.sinks.changes import last_per_key, snapshot_record, typed_keys
from shardline.sinks.options import SinkOptions, parse_bool
from shardline.sinks.values import typed_value

__all__ = ["DynamoDBSink", "padded_sequence"]

_OPTIONS = frozenset(
    {"region", "endpoint_url", "profile", "sequence_attribute", "create", "concurrency"}
)
_REASONS = re.compile(r"\[([^\]]*)\]")
_RETRIABLE_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded",
     "RequestLimitExceeded"}
)  # fmt: skip


def padded_sequence(sequence_number: str | int) -> str:
    """A sequence number as 40 zero-padded digits, so string order is number order."""
    return str(int(sequence_number)).zfill(40)


class DynamoDBSink(Sink):
    """Replicates the source table into another DynamoDB table, never older over newer."""

    def __init__(
        self,
        table: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        sequence_attribute: str = "_shardline_seq",
        create: bool = True,
        concurrency: int = 16,
        snapshot: bool = False,
        transform: Any = None,
        name: str | None = None,
    ) -> None:
        if not table:
            raise ConfigError("dynamodb:// sink: name the target table (dynamodb://Table)")
        if concurrency < 1:
            raise ConfigError(f"sink {name or table}: concurrency must be at least 1")
        self.table = table
        self.tombstones = f"{table}-tombstones"
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile
        self.sequence_attribute = sequence_attribute
        self.create = create
        self.concurrency = concurrency
        self.snapshot = snapshot
        self.transform = transform
        self.name = name or f"dynamodb://{table}"
        self._client: Any = None
        self._keys: tuple[str, ...] = ()
        self._context: SinkContext | None = None

    @classmethod
    def from_options(cls, options: SinkOptions) -> DynamoDBSink:
        """Build from a parsed ``dynamodb://Table?...`` URL."""
        options.reject_unknown(_OPTIONS)
        parts = urlsplit(options.url)
        table = (parts.netloc + parts.path).strip("/")
        return cls(
            table,
            region=options.take("region"),
            endpoint_url=options.take("endpoint_url"),
            profile=options.take("profile"),
            sequence_attribute=options.take("sequence_attribute", "_shardline_seq", str),
            create=options.take("create", True, parse_bool),
            concurrency=options.take("concurrency", 16, int),
            name=options.name,
        )

    # --- start -----------------------------------------------------------------------------

    async def start(self, context: SinkContext) -> None:
        """Connect, then create the target and tombstone tables when missing (or check them)."""
        from shardline.aws.client import AwsJsonClient
        from shardline.aws.settings import AwsSettings

        self._context = context
        self._keys = context.key_names()
        base = context.aws or AwsSettings()
        settings = AwsSettings(
            region=self.region or base.region,
            profile=self.profile or base.profile,
            endpoint_url=self.endpoint_url or (None if self.region else base.endpoint_url),
        )
        try:
            self._client = AwsJsonClient.create("dynamodb", settings)
            for table in (self.table, self.tombstones):
                await self._ensure_table(table, context)
        except SinkError:
            raise
        except ShardlineError as exc:
            raise SinkError(self.name, str(exc), retriable=exc.retriable) from exc

    async def _ensure_table(self, table: str, context: SinkContext) -> None:
        try:
            answer = await self._client.call("DescribeTable", {"TableName": table})
        except ResourceNotFoundError:
            if not self.create:
                raise SinkError(self.name, f"table {table} does not exist (create=false)") from None
            await self._create_table(table, context)
            return
        schema = answer["Table"]["KeySchema"]
        have = tuple(
            k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"] != "HASH")
        )
        if have != self._keys:
            raise SinkError(
                self.name,
                f"table {table} is keyed by {', '.join(have)}, "
                f"the source by {', '.join(self._keys)}",
            )

    async def _create_table(self, table: str, context: SinkContext) -> None:
        await self._client.call(
            "CreateTable",
            {
                "TableName": table,
                "KeySchema": [
                    {"AttributeName": k.name, "KeyType": k.role} for k in context.key_schema
                ],
                "AttributeDefinitions": [
                    {"AttributeName": k.name, "AttributeType": k.type} for k in context.key_schema
                ],
                "BillingMode": "PAY_PER_REQUEST",
            },
        )
        for _ in range(600):
            answer = await self._client.call("DescribeTable", {"TableName": table})
            if answer["Table"].get("TableStatus") == "ACTIVE":
                return
            await asyncio.sleep(1.0)
        raise SinkError(self.name, f"table {table} did not become ACTIVE", retriable=True)

    async def close(self) -> None:
        """Close the HTTP connections."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def iam_statements(self, region: str, account: str) -> list[dict[str, Any]]:
        """Writes to the target and tombstone tables (and creating them, when allowed)."""
        region = self.region or region
        arns = [
            f"arn:aws:dynamodb:{region}:{account}:table/{t}" for t in (self.table, self.tombstones)
        ]
        actions = ["dynamodb:DescribeTable", "dynamodb:PutItem", "dynamodb:DeleteItem",
                   "dynamodb:ConditionCheckItem"]  # fmt: skip
        if self.create:
            actions.append("dynamodb:CreateTable")
        return [{"Effect": "Allow", "Action": actions, "Resource": arns}]

    # --- writes ------------------------------------------------------------------------------

    def open_shard(self, shard_id: str) -> ShardSink:
        """A writer for one shard; shards share the client."""
        return _DynamoDBShard(self, shard_id)

    async def write_changes(self, records: Sequence[StreamRecord]) -> None:
        """Apply the last change of each key, concurrently across keys."""
        actions = [self._change_actions(r) for r in last_per_key(records)]
        await self._run([a for a in actions if a is not None])

    async def write_snapshot(self, rows: Sequence[SnapshotRow]) -> None:
        """Put snapshot rows where the target has nothing newer (sequence 0)."""
        actions = []
        for row in rows:
            item = row.item
            if self.transform is not None:
                document = self._transformed(snapshot_record(row))
                if document is None:
                    continue
                item = {**document, **{k: row.item[k] for k in self._keys}}
            actions.append(self._put_actions(item, padded_sequence(0)))
        await self._run(actions)

    def _change_actions(self, record: StreamRecord) -> list[dict[str, Any]] | None:
        sequence = padded_sequence(record.sequence_number)
        keys = typed_keys(record)
        if record.event_name == "REMOVE":
            return self._remove_actions(keys, sequence)
        if self.transform is not None:
            document = self._transformed(record)
            if document is None:
                return None
            item = {**document, **keys}
        else:
            image = record.wire.dynamodb.NewImage
            item = _load(image) if image else {}
            if not item:
                raise SinkError(self.name, "the stream carries no new image; use NEW_IMAGE")
        return self._put_actions(item, sequence)

    def _transformed(self, record: StreamRecord) -> dict[str, Any] | None:
        try:
            document = self.transform(record) if self.transform else None
        except Exception as exc:
            raise SinkError(self.name, f"the transform raised {exc!r}") from exc
        if document is None:
            return None
        try:
            return {str(k): typed_value(v) for k, v in document.items()}
        except TypeError as exc:
            raise SinkError(self.name, f"the transform's document: {exc}") from exc

    def _newer(self) -> str:
        return "attribute_not_exists(#seq) OR #seq < :seq"

    def _put_actions(self, item: dict[str, Any], sequence: str) -> list[dict[str, Any]]:
        keys = {k: item[k] for k in self._keys}
        names = {"#seq": self.sequence_attribute}
        values = {":seq": {"S": sequence}}
        written = {**item, self.sequence_attribute: {"S": sequence}}
        return [
            {"Put": {"TableName": self.table, "Item": written, "ConditionExpression": self._newer(),
                     "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}},
            {"ConditionCheck": {"TableName": self.tombstones, "Key": keys,
                                "ConditionExpression": self._newer(),
                                "ExpressionAttributeNames": names,
                                "ExpressionAttributeValues": values}},
        ]  # fmt: skip

    def _remove_actions(self, keys: dict[str, Any], sequence: str) -> list[dict[str, Any]]:
        names = {"#seq": self.sequence_attribute}
        values = {":seq": {"S": sequence}}
        tombstone = {**keys, self.sequence_attribute: {"S": sequence}}
        return [
            {"Delete": {"TableName": self.table, "Key": keys, "ConditionExpression": self._newer(),
                        "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}},
            {"Put": {"TableName": self.tombstones, "Item": tombstone,
                     "ConditionExpression": self._newer(),
                     "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}},
        ]  # fmt: skip

    async def _run(self, transactions: list[list[dict[str, Any]]]) -> None:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(actions: list[dict[str, Any]]) -> None:
            async with limit:
                await self._transact(actions)

        results = await asyncio.gather(*(one(a) for a in transactions), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def _transact(self, actions: list[dict[str, Any]]) -> None:
        try:
            await self._client.call("TransactWriteItems", {"TransactItems": actions})
        except AwsError as exc:
            if exc.code != "TransactionCanceledException":
                raise SinkError(self.name, str(exc), retriable=exc.retriable) from exc
            reasons = _cancellation_reasons(exc.message)
            if reasons <= {"ConditionalCheckFailed", "None"}:
                return  # the target already holds a newer version: a replay
            retriable = bool(reasons & _RETRIABLE_REASONS)
            raise SinkError(self.name, str(exc), retriable=retriable) from exc
        except ShardlineError as exc:
            raise SinkError(self.name, str(exc), retriable=exc.retriable) from exc


class _DynamoDBShard(ShardSink):
    def __init__(self, sink: DynamoDBSink, shard_id: str) -> None:
        self.sink = sink
        self.shard_id = shard_id

    async def write(self, records: Sequence[StreamRecord]) -> None:
        self.refuse_if_lost(f"shard {self.shard_id}")
        await self.sink.write_changes(records)


def _cancellation_reasons(message: str) -> set[str]:
    """``[ConditionalCheckFailed, None]`` of a TransactionCanceledException's message."""
    found = _REASONS.search(message)
    if not found:
        return {"Unknown"}
    return {part.strip() for part in found.group(1).split(",") if part.strip()}


def _load(raw: Any) -> dict[str, Any]:
    import orjson

    loaded: dict[str, Any] = orjson.loads(bytes(raw))
    return loaded
