"""EventBridge (``eventbridge://BusName`` or a bus ARN): PutEvents, 10 entries a call.

``source`` (default ``shardline``) and ``detail_type`` (default per change:
``dynamodb.item.inserted|modified|removed``) are options; ``Detail`` is the change in the
chosen format, ``Resources`` the stream ARN, ``Time`` when the change was made. Entries
that fail with a throttling or internal error are retried alone (the key's later changes
wait); other entry errors are permanent and take the failure path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shardline.errors import ConfigError
from shardline.sinks.aws_messaging import (
    AWS_OPTIONS,
    AwsMessageSink,
    EntryOutcome,
    is_retriable_code,
)
from shardline.sinks.formats import cloudevent_type
from shardline.sinks.notify import MESSAGE_OPTIONS, Messages, Outgoing, message_format
from shardline.sinks.options import SinkOptions
from shardline.sinks.sqs import _aws_options

__all__ = ["EventBridgeSink"]

_OPTIONS = AWS_OPTIONS | MESSAGE_OPTIONS | frozenset({"source", "detail_type"})


class EventBridgeSink(AwsMessageSink):
    """Puts every change on one event bus."""

    service = "events"

    def __init__(
        self,
        bus: str,
        messages: Messages,
        *,
        source: str = "shardline",
        detail_type: str | None = None,
        **aws: Any,
    ) -> None:
        if not bus:
            raise ConfigError("eventbridge:// sink: name the bus (eventbridge://BusName)")
        if source.startswith("aws."):
            raise ConfigError(f"sink eventbridge://{bus}: source may not start with aws.")
        super().__init__(aws.pop("name", None) or f"eventbridge://{bus}", messages, **aws)
        self.bus = bus
        self.source = source
        self.detail_type = detail_type

    @classmethod
    def from_options(cls, options: SinkOptions) -> EventBridgeSink:
        """Build from ``eventbridge://Bus?source=...&detail_type=...``."""
        options.reject_unknown(_OPTIONS)
        bus = options.url.split("://", 1)[1].split("?", 1)[0]
        return cls(bus, Messages(options.name, message_format(options), None),
                   source=str(options.take("source", "shardline")),
                   detail_type=options.take("detail_type"),
                   **_aws_options(options), name=options.name)  # fmt: skip

    def resolve(self) -> None:
        """DescribeEventBus: the bus exists."""
        self._client.describe_event_bus(Name=self.bus)

    def entry(self, message: Outgoing, entry_id: str) -> dict[str, Any]:
        detail_type = self.detail_type or cloudevent_type(message.record, "").lstrip(".")
        entry: dict[str, Any] = {
            "Source": self.source,
            "DetailType": detail_type,
            "Detail": message.body.decode(),
            "EventBusName": self.bus,
        }
        if self.messages.source.stream_arn:
            entry["Resources"] = [self.messages.source.stream_arn]
        seconds = message.record.approximate_creation_seconds
        if seconds:
            entry["Time"] = datetime.fromtimestamp(seconds, tz=UTC)
        return entry

    def size(self, message: Outgoing) -> int:
        detail_type = self.detail_type or "dynamodb.item.modified"
        return len(message.body) + len(self.source) + len(detail_type) + 64

    def call(self, entries: list[dict[str, Any]]) -> dict[str, EntryOutcome]:
        answer = self._client.put_events(Entries=entries)
        outcomes: dict[str, EntryOutcome] = {}
        for index, result in enumerate(answer.get("Entries") or []):
            code = result.get("ErrorCode")
            if code:
                why = f"{code}: {result.get('ErrorMessage', '')}"
                retry = is_retriable_code(str(code))
                outcomes[str(index)] = EntryOutcome("retry" if retry else "failed", why)
        return outcomes

    def iam_statements(self, region: str, account: str) -> list[dict[str, Any]]:
        """PutEvents and DescribeEventBus on the bus."""
        arn = self.bus if self.bus.startswith("arn:") else (
            f"arn:aws:events:{self.region or region}:{account}:event-bus/{self.bus}"
        )  # fmt: skip
        return [{"Effect": "Allow", "Action": ["events:PutEvents", "events:DescribeEventBus"],
                 "Resource": arn}]  # fmt: skip
