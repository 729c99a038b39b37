"""SNS (``sns://arn:aws:sns:REGION:ACCOUNT:Topic``): PublishBatch, 10 messages a call.

Message attributes ``event_name`` and ``table`` let subscribers filter. FIFO topics
(``.fifo``) as SQS: ``MessageGroupId`` = the item's key, ``MessageDeduplicationId`` = the
event id. A message over 256 KiB is refused through the failure path.
"""

from __future__ import annotations

from typing import Any

from shardline.errors import ConfigError
from shardline.sinks.aws_messaging import AWS_OPTIONS, AwsMessageSink, EntryOutcome
from shardline.sinks.notify import MESSAGE_OPTIONS, Messages, Outgoing, message_format
from shardline.sinks.options import SinkOptions
from shardline.sinks.sqs import (
    _aws_options,
    batch_entry,
    failed_entries,
    message_size,
    payload_store,
)

__all__ = ["SnsSink"]


class SnsSink(AwsMessageSink):
    """Publishes every change to one SNS topic (standard or FIFO)."""

    service = "sns"

    def __init__(self, topic_arn: str, messages: Messages, **aws: Any) -> None:
        parts = topic_arn.split(":")
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns":
            raise ConfigError(
                f"sns:// sink: {topic_arn!r} is not a topic ARN (arn:aws:sns:REGION:ACCOUNT:Topic)"
            )
        super().__init__(aws.pop("name", None) or f"sns://{topic_arn}", messages, **aws)
        self.target_region = parts[3] or None
        self.topic_arn = topic_arn
        self.fifo = topic_arn.endswith(".fifo")

    @classmethod
    def from_options(cls, options: SinkOptions) -> SnsSink:
        """Build from ``sns://arn:aws:sns:...``."""
        options.reject_unknown(AWS_OPTIONS | MESSAGE_OPTIONS | {"large_payloads"})
        topic = options.url.split("://", 1)[1].split("?", 1)[0]
        sink = cls(topic, Messages(options.name, message_format(options), None),
                   **_aws_options(options), name=options.name)  # fmt: skip
        sink.payloads = payload_store(options)
        return sink

    def resolve(self) -> None:
        """GetTopicAttributes: the topic exists."""
        self._client.get_topic_attributes(TopicArn=self.topic_arn)

    def entry(self, message: Outgoing, entry_id: str) -> dict[str, Any]:
        return batch_entry("Message", message, entry_id, self.messages.source.table, self.fifo)

    def size(self, message: Outgoing) -> int:
        return message_size(message, self.messages.source.table)

    def call(self, entries: list[dict[str, Any]]) -> dict[str, EntryOutcome]:
        answer = self._client.publish_batch(
            TopicArn=self.topic_arn, PublishBatchRequestEntries=entries
        )
        return failed_entries(answer.get("Failed") or [])

    def iam_statements(self, region: str, account: str) -> list[dict[str, Any]]:
        """Publish (which covers PublishBatch) and GetTopicAttributes on the topic."""
        statements = [{"Effect": "Allow", "Action": ["sns:Publish", "sns:GetTopicAttributes"],
                       "Resource": self.topic_arn}]  # fmt: skip
        if self.payloads is not None:
            statements.append(self.payloads.iam_statement())
        return statements
