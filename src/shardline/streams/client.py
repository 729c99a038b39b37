"""The DynamoDB Streams calls shardline makes, over :class:`~shardline.aws.client.AwsJsonClient`.

Arguments are checked locally first, so a bad setting fails with one clear line instead of
a round trip and a ``ValidationException``. Every paginated call returns all pages.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, Final

from shardline.aws.client import AwsJsonClient
from shardline.errors import AwsError, ConfigError, ResourceNotFoundError
from shardline.streams.model import RecordsPage, Shard, StreamDescription
from shardline.streams.wire import decode_records_answer

__all__ = [
    "ITERATOR_TYPES",
    "MAX_DESCRIBE_PAGE",
    "MAX_RECORDS_PER_PAGE",
    "StreamsClient",
    "resolve_stream_arn",
    "validate_stream_arn",
]

MAX_RECORDS_PER_PAGE: Final = 1000
MAX_DESCRIBE_PAGE: Final = 100
_SEQUENCE_TYPES: Final = frozenset({"AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"})
_POSITION_TYPES: Final = frozenset({"TRIM_HORIZON", "LATEST"})
ITERATOR_TYPES: Final = _SEQUENCE_TYPES | _POSITION_TYPES | {"AT_TIMESTAMP"}

_STREAM_ARN: Final = re.compile(
    r"arn:aws(?:-cn|-us-gov|-iso|-iso-[a-z])?:dynamodb:[a-z0-9-]+:\d{12}"
    r":table/[A-Za-z0-9_.-]{1,255}/stream/[^/\s]+"
)
_SEQUENCE_NUMBER: Final = re.compile(r"\d{21,40}")
_SHARD_ID: Final = re.compile(r"[A-Za-z0-9_.-]{28,65}")


def validate_stream_arn(arn: str) -> None:
    """Raise :class:`ConfigError` unless ``arn`` is a DynamoDB stream ARN.

    The shape is ``arn:aws[-cn|-us-gov]:dynamodb:<region>:<account>:table/<name>/stream/<label>``.
    """
    if not isinstance(arn, str) or _STREAM_ARN.fullmatch(arn) is None:
        raise ConfigError(
            f"not a DynamoDB stream ARN: {arn!r} (expected "
            "arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>; "
            "a table ARN or table name is not enough)"
        )


async def resolve_stream_arn(dynamodb: AwsJsonClient, table_name: str) -> str:
    """The ARN of ``table_name``'s current stream, from DescribeTable.

    Raises :class:`ConfigError` when the table does not exist or has no enabled stream.
    """
    try:
        answer = await dynamodb.call("DescribeTable", {"TableName": table_name})
    except ResourceNotFoundError as exc:
        raise ConfigError(
            f"table {table_name!r} was not found in {dynamodb.region} at {dynamodb.endpoint_url}"
        ) from exc
    table = answer.get("Table") or {}
    arn = table.get("LatestStreamArn")
    enabled = (table.get("StreamSpecification") or {}).get("StreamEnabled", arn is not None)
    if not arn or not enabled:
        raise ConfigError(
            f"table {table_name!r} has no stream enabled: enable one, e.g. "
            f"aws dynamodb update-table --table-name {table_name} "
            "--stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"
        )
    return str(arn)


class StreamsClient:
    """The DynamoDB Streams API as shardline uses it, with local argument checks."""

    def __init__(self, aws: AwsJsonClient) -> None:
        """Wrap an :class:`AwsJsonClient` built for the ``dynamodbstreams`` service."""
        if aws.service != "dynamodbstreams":
            raise ConfigError(f"StreamsClient needs a dynamodbstreams client, got {aws.service!r}")
        self._aws = aws

    @property
    def aws(self) -> AwsJsonClient:
        """The underlying signed client (close it when done)."""
        return self._aws

    async def list_streams(self, table_name: str | None = None) -> list[dict[str, Any]]:
        """Every stream (``StreamArn``, ``TableName``, ``StreamLabel``), optionally of one table."""
        params: dict[str, Any] = {} if table_name is None else {"TableName": table_name}
        streams: list[dict[str, Any]] = []
        pages = self._pages(
            "ListStreams",
            params,
            "ExclusiveStartStreamArn",
            lambda a: a.get("LastEvaluatedStreamArn"),
        )
        async for answer in pages:
            streams.extend(answer.get("Streams") or [])
        return streams

    async def describe_stream(self, stream_arn: str, *, page_size: int = 100) -> StreamDescription:
        """The stream with every shard, following ``LastEvaluatedShardId`` over all pages."""
        validate_stream_arn(stream_arn)
        first: dict[str, Any] | None = None
        shards: list[Shard] = []
        async for description in self._describe_pages(stream_arn, page_size, None):
            first = first or description
            shards.extend(Shard.from_wire(item) for item in description.get("Shards") or [])
        assert first is not None  # _describe_pages yields at least once
        return StreamDescription(
            stream_arn=first.get("StreamArn", stream_arn),
            stream_status=first.get("StreamStatus", "UNKNOWN"),
            stream_view_type=first.get("StreamViewType"),
            table_name=first.get("TableName"),
            shards=tuple(shards),
        )

    async def child_shards(self, stream_arn: str, shard_id: str) -> list[Shard]:
        """The children of ``shard_id`` (``ShardFilter`` ``CHILD_SHARDS``), all pages."""
        validate_stream_arn(stream_arn)
        _check_shard_id(shard_id)
        shard_filter = {"Type": "CHILD_SHARDS", "ShardId": shard_id}
        children: list[Shard] = []
        async for description in self._describe_pages(stream_arn, MAX_DESCRIBE_PAGE, shard_filter):
            children.extend(Shard.from_wire(item) for item in description.get("Shards") or [])
        return children

    async def get_shard_iterator(
        self,
        stream_arn: str,
        shard_id: str,
        iterator_type: str,
        sequence_number: str | None = None,
        *,
        timestamp: datetime | None = None,
    ) -> str:
        """A shard iterator at a position: ``TRIM_HORIZON``, ``LATEST``, ``AT_SEQUENCE_NUMBER``,
        ``AFTER_SEQUENCE_NUMBER`` (these two need ``sequence_number``) or ``AT_TIMESTAMP``
        (needs a timezone-aware ``timestamp``)."""
        validate_stream_arn(stream_arn)
        _check_shard_id(shard_id)
        params: dict[str, Any] = {
            "StreamArn": stream_arn,
            "ShardId": shard_id,
            "ShardIteratorType": iterator_type,
            **_position_params(iterator_type, sequence_number, timestamp),
        }
        answer = await self._aws.call("GetShardIterator", params)
        iterator = answer.get("ShardIterator")
        if not isinstance(iterator, str) or not iterator:
            raise AwsError("MissingShardIterator", "GetShardIterator answered no ShardIterator")
        return iterator

    async def get_records(self, shard_iterator: str, limit: int = 1000) -> RecordsPage:
        """One page of records; ``next_iterator`` is None once a closed shard is fully read."""
        if not shard_iterator or len(shard_iterator) > 2048:
            raise ConfigError("a shard iterator must be 1 to 2048 characters")
        _check_limit("GetRecords limit", limit, MAX_RECORDS_PER_PAGE)
        records, next_iterator = await self._aws.call_parsed(
            "GetRecords", {"ShardIterator": shard_iterator, "Limit": limit}, decode_records_answer
        )
        return RecordsPage(records=records, next_iterator=next_iterator)

    def _describe_pages(
        self, stream_arn: str, page_size: int, shard_filter: dict[str, str] | None
    ) -> AsyncIterator[dict[str, Any]]:
        _check_limit("DescribeStream page_size", page_size, MAX_DESCRIBE_PAGE)
        params: dict[str, Any] = {"StreamArn": stream_arn, "Limit": page_size}
        if shard_filter is not None:
            params["ShardFilter"] = shard_filter
        return self._pages(
            "DescribeStream",
            params,
            "ExclusiveStartShardId",
            lambda page: page.get("LastEvaluatedShardId"),
            unwrap=_description,
        )

    async def _pages(
        self,
        operation: str,
        params: dict[str, Any],
        cursor_param: str,
        next_cursor: Callable[[dict[str, Any]], str | None],
        unwrap: Callable[[dict[str, Any]], dict[str, Any]] = lambda answer: answer,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield every page of a paginated call; a cursor that repeats is a service bug."""
        seen: set[str] = set()
        while True:
            page = unwrap(await self._aws.call(operation, params))
            yield page
            cursor = next_cursor(page)
            if not cursor:
                return
            if cursor in seen:
                raise AwsError(
                    "PaginationLoop", f"{cursor_param} {cursor!r} repeated", operation=operation
                )
            seen.add(cursor)
            params = {**params, cursor_param: cursor}


def _description(answer: dict[str, Any]) -> dict[str, Any]:
    description = answer.get("StreamDescription")
    return description if isinstance(description, dict) else {}


def _position_params(
    iterator_type: str, sequence_number: str | None, timestamp: datetime | None
) -> dict[str, Any]:
    """The GetShardIterator parameters that go with ``iterator_type``; checks they fit."""
    if iterator_type not in ITERATOR_TYPES:
        raise ConfigError(
            f"unknown shard iterator type {iterator_type!r}: use one of {sorted(ITERATOR_TYPES)}"
        )
    if iterator_type in _SEQUENCE_TYPES:
        if sequence_number is None or _SEQUENCE_NUMBER.fullmatch(sequence_number) is None:
            raise ConfigError(
                f"{iterator_type} needs a sequence number of 21 to 40 digits,"
                f" got {sequence_number!r}"
            )
    elif sequence_number is not None:
        raise ConfigError(f"{iterator_type} takes no sequence number, got {sequence_number!r}")
    if iterator_type == "AT_TIMESTAMP":
        if timestamp is None or timestamp.tzinfo is None:
            raise ConfigError("AT_TIMESTAMP needs a timezone-aware timestamp")
        return {"Timestamp": timestamp.timestamp()}
    if timestamp is not None:
        raise ConfigError(f"{iterator_type} takes no timestamp")
    return {} if sequence_number is None else {"SequenceNumber": sequence_number}


def _check_limit(name: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ConfigError(f"{name} must be an integer from 1 to {maximum}, got {value!r}")


def _check_shard_id(shard_id: str) -> None:
    if not isinstance(shard_id, str) or _SHARD_ID.fullmatch(shard_id) is None:
        raise ConfigError(
            f"not a shard id: {shard_id!r} (expected 28 to 65 characters, e.g. shardId-...)"
        )
