"""Hooks that give moto's DynamoDB tables a real shard graph, and the Streams API over it.

:func:`install` (idempotent, called when a :class:`~shardline.local.LocalStack` starts)
patches moto 5.2.5 so that:

* every table with a stream carries a :class:`GraphStream` in place of moto's
  single-shard ``StreamShard``; writes become records in a :class:`ShardGraph`;
* an UpdateItem that creates an item writes one INSERT, not moto's two;
* TransactWriteItems publishes its records only when the transaction commits
  (moto writes phantom records for rolled-back transactions);
* disabling a stream closes its shards instead of breaking later writes, and enabling
  it again creates a new stream (new label and ARN) while the old one stays readable;
* :func:`ttl_delete` deletes an item as DynamoDB's TTL does: a REMOVE record whose
  ``userIdentity`` is the DynamoDB service.

:class:`StreamsApi` answers the four DynamoDB Streams operations from those graphs
with orjson, bypassing moto's slow model-driven serializer.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from shardline.local.faults import Faults
from shardline.local.graph import (
    Encoder,
    GraphError,
    InvalidRequestError,
    ShardGraph,
)

_ITERATOR_SEPARATOR = "|1|"
_ARCHIVE = "_shardline_old_streams"  # table attribute: {label: GraphStream} of old streams
TTL_IDENTITY = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
"""``userIdentity`` of a TTL delete, as the GetRecords wire format (botocore's model) has it."""


class StreamNotFoundError(GraphError):
    """The stream, or its table, does not exist (any more)."""

    code = "ResourceNotFoundException"


class ExpiredIteratorError(GraphError):
    """The shard iterator is unknown, malformed or too old."""

    code = "ExpiredIteratorException"


# --- write hooks -------------------------------------------------------------------


class _WriteState(threading.local):
    """Per-thread state of the write in progress (moto runs one request per thread)."""

    def __init__(self) -> None:
        self.in_update = 0
        self.muted = 0
        self.by_service = False
        self.pending: list[tuple[ShardGraph, bytes, Encoder]] | None = None


_state = _WriteState()
_install_lock = threading.Lock()
_installed = False


class GraphStream:
    """Stands in for moto's ``StreamShard`` on a table: turns writes into records."""

    def __init__(self, table: Any, graph: ShardGraph, view_type: str, created_on: float) -> None:
        self.table = table
        self.graph = graph
        self.view_type = view_type
        self.created_on = created_on
        self.enabled = True
        self.label: str = getattr(table, "latest_stream_label", None) or ""

    def add(self, old: Any, new: Any) -> None:
        """Record one write (moto calls this with the old and new item)."""
        if _state.muted or not self.enabled:
            return
        key, encode = _record_encoder(self.table, self.view_type, old, new)
        if _state.pending is not None:
            _state.pending.append((self.graph, key, encode))
        else:
            self.graph.append(key, encode)

    def disable(self) -> None:
        """Stop taking records and close every open shard."""
        self.enabled = False
        self.graph.close_all()

    def __deepcopy__(self, memo: dict[int, Any]) -> GraphStream:
        # moto deep-copies tables around TransactWriteItems; the copy shares the graph.
        copy = GraphStream(memo.get(id(self.table), self.table), self.graph, self.view_type, 0.0)
        copy.created_on, copy.enabled, copy.label = self.created_on, self.enabled, self.label
        return copy


def install() -> None:
    """Patch moto's DynamoDB model once per process (later calls do nothing)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import Table

        _wrap(Table, "set_stream_specification", _after_set_stream_specification)
        _wrap(Table, "put_item", _put_item_muted_in_update)
        _wrap(DynamoDBBackend, "update_item", _update_item_flagged)
        _wrap(DynamoDBBackend, "transact_write_items", _transact_publishing_on_commit)
        _wrap(DynamoDBBackend, "update_table_streams", _archiving_disabled_stream)
        _installed = True


def _wrap(cls: type, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = getattr(cls, name)
    wrapped = make(original)
    wrapped.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(cls, name, wrapped)


def _after_set_stream_specification(original: Callable[..., Any]) -> Callable[..., Any]:
    def set_stream_specification(table: Any, streams: dict[str, Any] | None) -> None:
        previous = table.__dict__.get("stream_shard")
        original(table, streams)
        if isinstance(previous, GraphStream) and not table.stream_specification["StreamEnabled"]:
            previous.disable()
            table.stream_shard = previous
        elif table.stream_shard is not None and not isinstance(table.stream_shard, GraphStream):
            table.stream_shard = _new_graph_stream(table)

    return set_stream_specification


def _archiving_disabled_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_table_streams(backend: Any, table: Any, spec: dict[str, Any]) -> None:
        previous = table.__dict__.get("stream_shard")
        enabling = bool(spec.get("StreamEnabled") or spec.get("StreamViewType"))
        if enabling and isinstance(previous, GraphStream) and not previous.enabled:
            # moto refuses to enable a stream twice; DynamoDB makes a new stream and
            # keeps the old one readable. Archive the old one and let moto start over.
            archive(table)[previous.label] = previous
            table.latest_stream_label = None
        original(backend, table, spec)

    return update_table_streams


def archive(table: Any) -> dict[str, GraphStream]:
    """The table's old (disabled, replaced) streams by label."""
    old: dict[str, GraphStream] | None = table.__dict__.get(_ARCHIVE)
    if old is None:
        old = {}
        setattr(table, _ARCHIVE, old)
    return old


def _put_item_muted_in_update(original: Callable[..., Any]) -> Callable[..., Any]:
    def put_item(table: Any, *args: Any, **kwargs: Any) -> Any:
        if not _state.in_update:
            return original(table, *args, **kwargs)
        # moto's UpdateItem first puts a keys-only item, then records the update:
        # mute the first so that one INSERT is written, as in DynamoDB.
        _state.muted += 1
        try:
            return original(table, *args, **kwargs)
        finally:
            _state.muted -= 1

    return put_item


def _update_item_flagged(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_item(backend: Any, *args: Any, **kwargs: Any) -> Any:
        _state.in_update += 1
        try:
            return original(backend, *args, **kwargs)
        finally:
            _state.in_update -= 1

    return update_item


def _transact_publishing_on_commit(original: Callable[..., Any]) -> Callable[..., Any]:
    def transact_write_items(backend: Any, *args: Any, **kwargs: Any) -> Any:
        outer, _state.pending = _state.pending, []
        try:
            result = original(backend, *args, **kwargs)
            pending = _state.pending
        finally:
            _state.pending = outer
        for graph, key, encode in pending:
            graph.append(key, encode)
        return result

    return transact_write_items


def _new_graph_stream(table: Any) -> GraphStream:
    view_type = (table.stream_specification or {}).get("StreamViewType", "KEYS_ONLY")
    return GraphStream(table, ShardGraph(), view_type, time.time())


def stream_of(table: Any) -> GraphStream | None:
    """The table's :class:`GraphStream` (converting a table made before install)."""
    stream = getattr(table, "stream_shard", None)
    if stream is None or isinstance(stream, GraphStream):
        return stream
    table.stream_shard = _new_graph_stream(table)
    return table.stream_shard  # type: ignore[no-any-return]


# --- records -----------------------------------------------------------------------


def _record_encoder(table: Any, view_type: str, old: Any, new: Any) -> tuple[bytes, Encoder]:
    """The partition key of a write, and an encoder of its stream record."""
    item = old if old is not None else new
    keys = {table.hash_key_attr: item.hash_key.to_json()}
    if table.range_key_attr is not None:
        keys[table.range_key_attr] = item.range_key.to_json()
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": float(int(time.time())),
        "Keys": keys,
    }
    if new is not None and view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        dynamodb["NewImage"] = new.to_json()["Attributes"]
    if old is not None and view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
        dynamodb["OldImage"] = old.to_json()["Attributes"]
    dynamodb["SequenceNumber"] = ""
    dynamodb["SizeBytes"] = len(_dumps(dynamodb)) + 21
    dynamodb["StreamViewType"] = view_type
    record = {
        "eventID": os.urandom(16).hex(),
        "eventName": _event_name(old, new),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": table.region_name,
        "dynamodb": dynamodb,
    }
    if _state.by_service:
        record["userIdentity"] = dict(TTL_IDENTITY)

    def encode(sequence_number: str) -> bytes:
        dynamodb["SequenceNumber"] = sequence_number
        return _dumps(record)

    return _dumps(keys[table.hash_key_attr]), encode


def _event_name(old: Any, new: Any) -> str:
    if old is None:
        return "INSERT"
    return "REMOVE" if new is None else "MODIFY"


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"cannot encode {type(value).__name__}")


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


def find_table(account_id: str, region: str, table_name: str) -> Any:
    """moto's table, or :class:`StreamNotFoundError`."""
    from moto.dynamodb.models import dynamodb_backends

    try:
        table = dynamodb_backends[account_id][region].tables.get(table_name)
    except (KeyError, ValueError):
        table = None
    if table is None:
        raise StreamNotFoundError(f"Requested resource not found: Table: {table_name} not found")
    return table


def find_stream(ref: StreamRef) -> tuple[Any, GraphStream]:
    """The table and graph stream named by a stream ARN (the latest or an old one)."""
    table = find_table(ref.account_id, ref.region, ref.table_name)
    stream = stream_of(table)
    if stream is None or table.latest_stream_label != ref.label:
        stream = archive(table).get(ref.label)
    if stream is None:
        raise StreamNotFoundError(f"Requested resource not found: Stream: {ref.arn} not found")
    return table, stream


def ttl_delete(account_id: str, region: str, table_name: str, key: dict[str, Any]) -> bool:
    """Delete an item as TTL does (REMOVE by the DynamoDB service); False if absent."""
    from moto.dynamodb.models import dynamodb_backends

    find_table(account_id, region, table_name)
    _state.by_service = True
    try:
        deleted = dynamodb_backends[account_id][region].delete_item(table_name, key)
    finally:
        _state.by_service = False
    return deleted is not None


def tables_in(account_id: str, region: str) -> list[Any]:
    """Every moto table of one account and region, in creation order."""
    from moto.dynamodb.models import dynamodb_backends

    return list(dynamodb_backends[account_id][region].tables.values())


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
