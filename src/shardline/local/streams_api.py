"""The four DynamoDB Streams operations, answered from the shard graphs as JSON bytes.

:class:`StreamsApi` reads the :class:`~shardline.local.patch.GraphStream` of the table a
stream ARN names (the latest stream or an archived one), applies the retention to it,
and writes its answers with orjson, bypassing moto's slow model-driven serializer.
Shard iterators are ``<stream ARN>|1|<token>``; the token holds the shard, the
position and the time the iterator was issued (for the iterator TTL).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from shardline.local.faults import Faults
from shardline.local.graph import GraphError, InvalidRequestError
from shardline.local.patch import GraphStream, archive, stream_of
from shardline.local.tables import StreamNotFoundError, find_table, tables_in

_ITERATOR_SEPARATOR = "|1|"


class ExpiredIteratorError(GraphError):
    """The shard iterator is unknown, malformed or too old."""

    code = "ExpiredIteratorException"


# --- looking streams up ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamRef:
    """A stream ARN taken apart."""

    arn: str
    region: str
    account_id: str
    table_name: str
    label: str

    @classmethod
    def parse(cls, arn: Any) -> StreamRef:
        """Parse ``arn:aws:dynamodb:<region>:<account>:table/<T>/stream/<label>``."""
        if not isinstance(arn, str):
            raise InvalidRequestError("StreamArn is required")
        parts = arn.split(":", 5)
        resource = parts[5].split("/") if len(parts) == 6 else []
        if len(resource) != 4 or resource[0] != "table" or resource[2] != "stream":
            raise InvalidRequestError(f"Invalid StreamArn: {arn}")
        return cls(arn, parts[3], parts[4], resource[1], resource[3])


def find_stream(ref: StreamRef) -> tuple[Any, GraphStream]:
    """The table and graph stream named by a stream ARN (the latest or an old one)."""
    table = find_table(ref.account_id, ref.region, ref.table_name)
    stream = stream_of(table)
    if stream is None or table.latest_stream_label != ref.label:
        stream = archive(table).get(ref.label)
    if stream is None:
        raise StreamNotFoundError(f"Requested resource not found: Stream: {ref.arn} not found")
    return table, stream


# --- the Streams API ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the account and region its signature names."""

    account_id: str
    region: str


_HANDLERS = {
    "DescribeStream": "describe_stream",
    "ListStreams": "list_streams",
    "GetShardIterator": "get_shard_iterator",
    "GetRecords": "get_records",
}


class StreamsApi:
    """The DynamoDB Streams operations, answered from the shard graphs as JSON bytes."""

    def __init__(
        self,
        *,
        max_page_bytes: int = 1_048_576,
        children_first: bool = False,
        eager_shard_end: bool = True,
        iterator_ttl: float | None = None,
        retention: float | None = None,
        describe_page_size: int = 100,
        faults: Faults | None = None,
    ) -> None:
        self.max_page_bytes = max_page_bytes
        self.children_first = children_first
        self.eager_shard_end = eager_shard_end
        self.iterator_ttl = iterator_ttl
        self.retention = retention
        """Seconds; older records are trimmed and older closed shards disappear."""
        self.describe_page_size = describe_page_size
        """The most shards one DescribeStream page holds, whatever the Limit asked."""
        self.faults = faults or Faults()

    def find(self, ref: StreamRef) -> tuple[Any, GraphStream]:
        """:func:`find_stream`, after applying the retention to the stream."""
        table, stream = find_stream(ref)
        if self.retention is not None:
            stream.graph.expire(int(self.retention * 1000))
        return table, stream

    def handle(self, operation: str, body: bytes, caller: Caller) -> bytes:
        """Answer one request; raises :class:`GraphError` subclasses for AWS errors."""
        handler: Callable[[dict[str, Any], Caller], bytes] | None = getattr(
            self, _HANDLERS.get(operation, ""), None
        )
        if handler is None:
            raise InvalidRequestError(f"Unknown operation: {operation}")
        params = _params(body)
        return handler(params, caller)

    def describe_stream(self, params: dict[str, Any], caller: Caller) -> bytes:
        """DescribeStream with Limit, ExclusiveStartShardId and ShardFilter."""
        table, stream = self.find(StreamRef.parse(params.get("StreamArn")))
        limit = _int_param(params, "Limit", 100, 1, 100)
        listing = stream.graph.describe(
            limit=min(limit, max(1, self.describe_page_size)),
            exclusive_start_shard_id=params.get("ExclusiveStartShardId"),
            children_of=_child_filter(params.get("ShardFilter")),
            children_first=self.children_first,
        )
        description: dict[str, Any] = {
            "StreamArn": params["StreamArn"],
            "StreamLabel": stream.label,
            "StreamStatus": "ENABLED" if stream.enabled else "DISABLED",
            "StreamViewType": stream.view_type,
            "CreationRequestDateTime": stream.created_on,
            "TableName": table.name,
            "KeySchema": table.schema,
            "Shards": listing.shards,
        }
        if listing.last_evaluated_shard_id is not None:
            description["LastEvaluatedShardId"] = listing.last_evaluated_shard_id
        return orjson.dumps({"StreamDescription": description})

    def list_streams(self, params: dict[str, Any], caller: Caller) -> bytes:
        """ListStreams with TableName, Limit and ExclusiveStartStreamArn."""
        limit = _int_param(params, "Limit", 100, 1, 100)
        wanted = params.get("TableName")
        streams = [
            summary
            for table in tables_in(caller.account_id, caller.region)
            if wanted in (None, table.name)
            for summary in _stream_summaries(table)
        ]
        start = _index_after_arn(streams, params.get("ExclusiveStartStreamArn"))
        page = streams[start : start + limit]
        answer: dict[str, Any] = {"Streams": page}
        if start + limit < len(streams):
            answer["LastEvaluatedStreamArn"] = page[-1]["StreamArn"]
        return orjson.dumps(answer)

    def get_shard_iterator(self, params: dict[str, Any], caller: Caller) -> bytes:
        """GetShardIterator for all four position types."""
        ref = StreamRef.parse(params.get("StreamArn"))
        _, stream = self.find(ref)
        shard_id = params.get("ShardId")
        if not isinstance(shard_id, str):
            raise InvalidRequestError("ShardId is required")
        position = stream.graph.position(
            shard_id, str(params.get("ShardIteratorType")), params.get("SequenceNumber")
        )
        return orjson.dumps({"ShardIterator": _make_iterator(ref.arn, shard_id, position)})

    def get_records(self, params: dict[str, Any], caller: Caller) -> bytes:
        """GetRecords: at most Limit records and ``max_page_bytes`` bytes."""
        limit = _int_param(params, "Limit", 1000, 1, 1000)
        arn, shard_id, position, issued = _read_iterator(params.get("ShardIterator"))
        ref = StreamRef.parse(arn)
        _, stream = self.find(ref)
        if self.iterator_ttl is not None and time.time() - issued > self.iterator_ttl:
            raise ExpiredIteratorError("Iterator expired")
        if self.faults.pick("GetRecords", [ref.table_name], kinds=("empty",)):
            stream.graph.read(shard_id, position, limit=1, max_bytes=1)  # errors still apply
            next_iterator = _make_iterator(arn, shard_id, position)
            return b'{"Records":[],"NextShardIterator":' + orjson.dumps(next_iterator) + b"}"
        page = stream.graph.read(
            shard_id,
            position,
            limit=limit,
            max_bytes=self.max_page_bytes,
            eager_shard_end=self.eager_shard_end,
        )
        body = b'{"Records":[' + b",".join(page.records) + b"]"
        if page.next_position is not None:
            next_iterator = _make_iterator(arn, shard_id, page.next_position)
            body += b',"NextShardIterator":' + orjson.dumps(next_iterator)
        return body + b"}"


def _params(body: bytes) -> dict[str, Any]:
    try:
        params = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError("The request body is not valid JSON") from exc
    if not isinstance(params, dict):
        raise InvalidRequestError("The request body must be a JSON object")
    return params


def _int_param(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequestError(
            f"1 validation error detected: Value '{value}' at '{name[0].lower() + name[1:]}' "
            f"failed to satisfy constraint: Member must have value between {low} and {high}"
        )
    return value


def _child_filter(shard_filter: Any) -> str | None:
    if shard_filter is None:
        return None
    if not isinstance(shard_filter, dict) or shard_filter.get("Type") != "CHILD_SHARDS":
        raise InvalidRequestError("ShardFilter.Type must be CHILD_SHARDS")
    shard_id = shard_filter.get("ShardId")
    if not isinstance(shard_id, str):
        raise InvalidRequestError("ShardFilter.ShardId is required")
    return shard_id


def _stream_summaries(table: Any) -> list[dict[str, str]]:
    """The table's old streams, then its latest one (when it has one)."""
    labels = list(archive(table))
    if table.latest_stream_label:
        labels.append(table.latest_stream_label)
    return [
        {"StreamArn": f"{table.table_arn}/stream/{label}", "TableName": table.name,
         "StreamLabel": label}
        for label in labels
    ]  # fmt: skip


def _index_after_arn(streams: list[dict[str, str]], arn: Any) -> int:
    if arn is None:
        return 0
    for index, stream in enumerate(streams):
        if stream["StreamArn"] == arn:
            return index + 1
    raise StreamNotFoundError(f"Requested resource not found: Stream: {arn} not found")


def _make_iterator(stream_arn: str, shard_id: str, position: int) -> str:
    token = orjson.dumps([shard_id, str(position), time.time()])
    return stream_arn + _ITERATOR_SEPARATOR + base64.urlsafe_b64encode(token).decode("ascii")


def _read_iterator(iterator: Any) -> tuple[str, str, int, float]:
    """(stream ARN, shard id, position, issue time) of an iterator we made."""
    if not isinstance(iterator, str) or _ITERATOR_SEPARATOR not in iterator:
        raise ExpiredIteratorError("Iterator is not valid (it may have expired)")
    arn, _, token = iterator.partition(_ITERATOR_SEPARATOR)
    try:
        shard_id, position, issued = orjson.loads(base64.urlsafe_b64decode(token))
        return arn, str(shard_id), int(position), float(issued)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise ExpiredIteratorError("Iterator is not valid (it may have expired)") from exc
