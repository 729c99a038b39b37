"""Hooks that give moto's DynamoDB tables a real shard graph.

:func:`install` (idempotent, called when a :class:`~shardline.local.LocalStack` starts)
patches moto 5.2.5 so that:

* every table with a stream carries a :class:`GraphStream` in place of moto's
  single-shard ``StreamShard``; writes become records (:mod:`shardline.local.records`)
  in a :class:`~shardline.local.graph.ShardGraph`;
* an UpdateItem that creates an item writes one INSERT, not moto's two;
* TransactWriteItems publishes its records only when the transaction commits
  (moto writes phantom records for rolled-back transactions);
* disabling a stream closes its shards instead of breaking later writes, and enabling
  it again creates a new stream (new label and ARN) while the old one stays readable
  (:func:`archive`);
* :func:`ttl_delete` deletes an item as DynamoDB's TTL does: a REMOVE record whose
  ``userIdentity`` is the DynamoDB service.

:mod:`shardline.local.streams_api` answers the Streams operations from those graphs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from shardline.local.graph import Encoder, ShardGraph
from shardline.local.records import record_encoder
from shardline.local.tables import find_table

_ARCHIVE = "_shardline_old_streams"  # table attribute: {label: GraphStream} of old streams


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
        key, encode = record_encoder(
            self.table, self.view_type, old, new, by_service=_state.by_service
        )
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
