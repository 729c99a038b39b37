"""What every notification sink (webhook, SQS, SNS, EventBridge) shares.

* the message options ``format``, ``images``, ``type_prefix`` (:func:`message_format`);
* :class:`Messages`: a change to the bytes to send, through the user's transform (its
  document is sent instead of the formatted message; ``None`` skips the change);
* :class:`Delivered`: the event ids a shard already delivered in a batch that then failed,
  so the retry of that batch does not send them again (only the undelivered rest, in
  order); forgotten once a batch is written.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from shardline.errors import ConfigError
from shardline.records import StreamRecord
from shardline.sinks.base import SinkContext, SinkError, SnapshotRow, Transform
from shardline.sinks.formats import MessageFormat, Source, encode, key_text, snapshot_change
from shardline.sinks.options import SinkOptions
from shardline.sinks.values import dumps_document

__all__ = [
    "MESSAGE_OPTIONS",
    "Delivered",
    "Messages",
    "Outgoing",
    "RateLimiter",
    "message_format",
    "snapshot_records",
]

MESSAGE_OPTIONS: Final = frozenset({"format", "images", "type_prefix"})


def message_format(options: SinkOptions) -> MessageFormat:
    """``format``, ``images`` and ``type_prefix`` of a sink URL; a bad one names the sink."""
    kind = str(options.take("format", "native")).lower()
    images = str(options.take("images", "plain")).lower()
    prefix = str(options.take("type_prefix", "shardline"))
    if kind == "lambda" and images != "plain":
        raise ConfigError(f"sink {options.name}: format=lambda always sends typed images")
    try:
        return MessageFormat(kind, images, prefix)
    except ValueError as exc:
        raise ConfigError(f"sink {options.name}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One change ready to send: its record, key text and message body (or, for a message
    stored in S3, the pointer to it and the stored message's ``payload_size``)."""

    record: StreamRecord
    key: str
    body: bytes
    #: The size of the message stored in S3 when ``body`` is a pointer to it (else 0).
    payload_size: int = 0

    @property
    def event_id(self) -> str:
        """The change's event id (webhook-id, deduplication id)."""
        return self.record.event_id


class Messages:
    """Turns a shard's changes into :class:`Outgoing` messages for one sink."""

    def __init__(self, sink: str, fmt: MessageFormat, transform: Transform | None) -> None:
        self.sink = sink
        self.format = fmt
        self.transform = transform
        self.source = Source()

    def bind(self, context: SinkContext) -> None:
        """Learn the source (table, stream, key names) when the sink starts."""
        self.source = Source(
            table=context.table,
            stream_arn=context.stream_arn,
            key_names=context.key_names(),
            name=context.application or "shardline",
        )

    def outgoing(self, records: Iterable[StreamRecord]) -> list[Outgoing]:
        """The messages of ``records`` in order (changes the transform skips left out)."""
        out = []
        for record in records:
            body = self.body(record)
            if body is not None:
                out.append(Outgoing(record, key_text(record, self.source.key_names), body))
        return out

    def body(self, record: StreamRecord) -> bytes | None:
        """One message body, or ``None`` when the transform skips the change."""
        if self.transform is None:
            return encode(record, self.format, self.source)
        try:
            document = self.transform(record)
        except Exception as exc:
            raise SinkError(self.sink, f"the transform raised {exc!r}") from exc
        if document is None:
            return None
        try:
            return dumps_document(document)
        except TypeError as exc:
            raise SinkError(self.sink, f"the transform's document: {exc}") from exc


def snapshot_records(rows: Sequence[SnapshotRow], key_names: Sequence[str]) -> list[StreamRecord]:
    """Snapshot rows as INSERT changes (Debezium ``op`` ``r``; event id per row)."""
    return [snapshot_change(r.item, key_names, r.segment, r.ordinal) for r in rows]


class Delivered:
    """Event ids delivered by a write that then failed as a whole (bounded memory)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def add(self, event_id: str) -> None:
        """Remember that ``event_id`` reached the target."""
        self._ids[event_id] = None
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)

    def pending(self, messages: Sequence[Outgoing]) -> list[Outgoing]:
        """``messages`` without those already delivered."""
        if not self._ids:
            return list(messages)
        return [m for m in messages if m.event_id not in self._ids]

    def forget(self, messages: Iterable[Outgoing]) -> None:
        """The batch holding ``messages`` was written: no retry will bring them again."""
        if self._ids:
            for message in messages:
                self._ids.pop(message.event_id, None)


class RateLimiter:
    """At most ``rate`` sends a second across a sink (``None``: no limit); spaced evenly."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("max_rps must be positive")
        self._interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    @property
    def limited(self) -> bool:
        """Whether there is a limit at all (callers skip :meth:`wait` when not)."""
        return bool(self._interval)

    async def wait(self) -> None:
        """Return when the next send may go."""
        if not self._interval:
            return
        import asyncio

        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)
