"""Stream changes and snapshot rows as the PostgreSQL sink's staged rows (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from shardline.records import StreamRecord
from shardline.sinks.base import SinkError, SnapshotRow, Transform
from shardline.sinks.changes import (
    changed_at,
    is_ttl_delete,
    key_values,
    last_per_key,
    snapshot_record,
    typed_keys,
)
from shardline.sinks.postgres_sql import Layout
from shardline.sinks.values import dumps_document, plain_item_json

__all__ = ["RowBuilder"]

#: ``\u0000`` in JSON text that is not an escaped backslash followed by ``u0000``.
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_WITH_NEW_IMAGE = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
_SKIP = object()


class RowBuilder:
    """Builds the rows one sink stages, in its layout's column order."""

    def __init__(
        self, sink: str, layout: Layout, transform: Transform | None, view_type: str
    ) -> None:
        self.sink = sink
        self.layout = layout
        self.transform = transform
        self.view_type = view_type

    def check_view_type(self) -> None:
        """State mode needs the new image (or a transform that builds the row)."""
        if self.layout.mode != "state" or self.transform is not None or not self.view_type:
            return
        if self.view_type not in _WITH_NEW_IMAGE:
            raise SinkError(
                self.sink,
                f"the stream's view type is {self.view_type}; state mode needs NEW_IMAGE or "
                "NEW_AND_OLD_IMAGES (or a transform that builds the row)",
            )

    def rows(self, records: Sequence[StreamRecord]) -> list[tuple[Any, ...]]:
        """Staged rows of a batch: the last change per key (state) or every change."""
        if self.layout.mode == "changelog":
            built = (self._changelog_row(r) for r in records)
        else:
            built = (self._state_row(r) for r in last_per_key(records))
        return [row for row in built if row is not _SKIP]

    def snapshot_rows(self, rows: Sequence[SnapshotRow]) -> list[tuple[Any, ...]]:
        """Staged rows of snapshot items: sequence 0 in state mode, ``snapshot`` events."""
        staged = []
        for row in rows:
            where = f"snapshot segment {row.segment} item {row.ordinal}"
            keys = key_values(self.sink, self.layout.keys, row.item, where)
            document = self._snapshot_document(row, where)
            if document is None:
                continue
            if self.layout.mode == "changelog":
                shard = f"snapshot-{row.segment}"
                event_id = f"{shard}-{row.ordinal}"
                staged.append((*keys, "SNAPSHOT", None, document, row.ordinal, shard, event_id,
                               None, False))  # fmt: skip
            else:
                staged.append((*keys, document, 0, "SNAPSHOT", None, False))
        return staged

    def _snapshot_document(self, row: SnapshotRow, where: str) -> str | None:
        if self.transform is None:
            return _checked(self.sink, where, plain_item_json(row.item))
        return self._document(snapshot_record(row), where)

    def _state_row(self, record: StreamRecord) -> Any:
        where = _where(record)
        keys = key_values(self.sink, self.layout.keys, typed_keys(record), where)
        removed = record.event_name == "REMOVE"
        if removed:
            document = None
        else:
            document = self._document(record, where)
            if document is None:
                return _SKIP
        return (
            *keys,
            document,
            int(record.sequence_number),
            record.event_name,
            changed_at(record),
            is_ttl_delete(record),
        )

    def _changelog_row(self, record: StreamRecord) -> Any:
        where = _where(record)
        keys = key_values(self.sink, self.layout.keys, typed_keys(record), where)
        if self.transform is not None:
            new = self._document(record, where)
            if new is None:
                return _SKIP
            old = None
        else:
            new = _image(self.sink, where, record.wire.dynamodb.NewImage)
            old = _image(self.sink, where, record.wire.dynamodb.OldImage)
        return (
            *keys,
            record.event_name,
            old,
            new,
            int(record.sequence_number),
            record.shard_id,
            record.event_id,
            changed_at(record),
            is_ttl_delete(record),
        )

    def _document(self, record: StreamRecord, where: str) -> str | None:
        """The row's document: the transform's, or the new image as plain JSON."""
        if self.transform is None:
            return _image(self.sink, where, record.wire.dynamodb.NewImage) or "{}"
        try:
            document = self.transform(record)
        except Exception as exc:
            raise SinkError(self.sink, f"{where}: the transform raised {exc!r}") from exc
        if document is None:
            return None
        if not isinstance(document, dict):
            raise SinkError(
                self.sink, f"{where}: the transform returned {type(document).__name__}, not a dict"
            )
        try:
            return _checked(self.sink, where, dumps_document(document))
        except TypeError as exc:
            raise SinkError(self.sink, f"{where}: the transform's document: {exc}") from exc


def _image(sink: str, where: str, raw: Any) -> str | None:
    if not raw:
        return None
    return _checked(sink, where, plain_item_json(raw))


def _checked(sink: str, where: str, document: bytes) -> str:
    if b"\\u0000" in document and _NUL.search(document):
        raise SinkError(
            sink, f"{where}: a value holds a NUL character (\\u0000), which PostgreSQL cannot store"
        )
    return document.decode()


def _where(record: StreamRecord) -> str:
    return f"change {record.sequence_number} of shard {record.shard_id}"
