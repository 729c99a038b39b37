"""SQS (``sqs://QueueName`` or ``sqs://https://sqs.REGION.amazonaws.com/ACCOUNT/Queue``).

SendMessageBatch, 10 messages a call (:mod:`.aws_messaging`). The message body is the
change in the chosen format; message attributes ``event_name`` (INSERT/MODIFY/REMOVE)
and ``table``. For a FIFO queue (``.fifo``): ``MessageGroupId`` = the item's key (so SQS
keeps the order per key) and ``MessageDeduplicationId`` = the event id (a retry within
SQS's five-minute window is not delivered twice). A message over 256 KiB is refused
through the failure path.
"""

from __future__ import annotations

from typing import Any

from shardline.errors import ConfigError
from shardline.sinks.aws_messaging import (
    AWS_OPTIONS,
    AwsMessageSink,
    EntryOutcome,
    group_id,
)
from shardline.sinks.large_payloads import SIZE_ATTRIBUTE, PayloadStore
from shardline.sinks.notify import MESSAGE_OPTIONS, Messages, Outgoing, message_format
from shardline.sinks.options import SinkOptions

__all__ = ["SqsSink", "message_attributes"]


def message_attributes(message: Outgoing, table: str) -> dict[str, Any]:
    """``event_name`` and ``table`` as String message attributes (for filters), and the
    Extended Client's ``ExtendedPayloadSize`` for a message stored in S3."""
    attributes = {"event_name": {"DataType": "String", "StringValue": message.record.event_name}}
    if table:
        attributes["table"] = {"DataType": "String", "StringValue": table}
    if message.payload_size:
        size = {"DataType": "Number", "StringValue": str(message.payload_size)}
        attributes[SIZE_ATTRIBUTE] = size
    return attributes


def attributes_size(attributes: dict[str, Any]) -> int:
    """What attributes count towards the 256 KiB limit: names, types and values."""
    return sum(
        len(name) + len(value["DataType"]) + len(value["StringValue"].encode())
        for name, value in attributes.items()
    )


class SqsSink(AwsMessageSink):
    """Sends every change to one SQS queue (standard or FIFO)."""

    service = "sqs"

    def __init__(self, queue: str, messages: Messages, **aws: Any) -> None:
        if not queue:
            raise ConfigError("sqs:// sink: name the queue (sqs://QueueName or its URL)")
        super().__init__(aws.pop("name", None) or f"sqs://{queue}", messages, **aws)
        self.queue = queue
        self.queue_url = queue if queue.startswith(("http://", "https://")) else ""
        self.fifo = queue.rstrip("/").endswith(".fifo")

    @classmethod
    def from_options(cls, options: SinkOptions) -> SqsSink:
        """Build from ``sqs://Queue?region=...``."""
        options.reject_unknown(AWS_OPTIONS | MESSAGE_OPTIONS | {"large_payloads"})
        queue = options.url.split("://", 1)[1].split("?", 1)[0]
        sink = cls(queue, Messages(options.name, message_format(options), None),
                   **_aws_options(options), name=options.name)  # fmt: skip
        sink.payloads = payload_store(options)
        return sink

    def resolve(self) -> None:
        """GetQueueUrl (or GetQueueAttributes of a URL): the queue exists."""
        if not self.queue_url:
            self.queue_url = self._client.get_queue_url(QueueName=self.queue)["QueueUrl"]
        self._client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])

    def entry(self, message: Outgoing, entry_id: str) -> dict[str, Any]:
        return batch_entry("MessageBody", message, entry_id, self.messages.source.table, self.fifo)

    def size(self, message: Outgoing) -> int:
        return message_size(message, self.messages.source.table)

    def call(self, entries: list[dict[str, Any]]) -> dict[str, EntryOutcome]:
        answer = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return failed_entries(answer.get("Failed") or [])

    def iam_statements(self, region: str, account: str) -> list[dict[str, Any]]:
        """SendMessage (which covers SendMessageBatch), GetQueueUrl, GetQueueAttributes."""
        name = self.queue.rstrip("/").rsplit("/", 1)[-1]
        statements = [{
            "Effect": "Allow",
            "Action": ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
            "Resource": f"arn:aws:sqs:{self.region or region}:{account}:{name}",
        }]  # fmt: skip
        if self.payloads is not None:
            statements.append(self.payloads.iam_statement())
        return statements


def failed_entries(failed: list[dict[str, Any]]) -> dict[str, EntryOutcome]:
    """SQS/SNS ``Failed`` entries: a sender fault is permanent, others are retried."""
    return {
        str(f["Id"]): EntryOutcome(
            "failed" if f.get("SenderFault") else "retry",
            f"{f.get('Code', 'Error')}: {' '.join(str(f.get('Message', '')).split())}",
        )
        for f in failed
    }


def payload_store(options: SinkOptions) -> PayloadStore | None:
    """The ``large_payloads=s3://bucket/prefix`` option, or ``None``."""
    url = options.take("large_payloads")
    return None if url is None else PayloadStore.from_url(str(url), options.name)


def _aws_options(options: SinkOptions) -> dict[str, Any]:
    return {
        "region": options.take("region"),
        "endpoint_url": options.take("endpoint_url"),
        "profile": options.take("profile"),
        "concurrency": options.take("concurrency", 8, int),
        "retries": options.take("retries", 3, int),
    }


def batch_entry(
    body_field: str, message: Outgoing, entry_id: str, table: str, fifo: bool
) -> dict[str, Any]:
    """One SendMessageBatch / PublishBatch entry; FIFO: group = the key, dedup = event id."""
    entry: dict[str, Any] = {
        "Id": entry_id,
        body_field: message.body.decode(),
        "MessageAttributes": message_attributes(message, table),
    }
    if fifo:
        entry["MessageGroupId"] = group_id(message.key)
        entry["MessageDeduplicationId"] = message.event_id
    return entry


def message_size(message: Outgoing, table: str) -> int:
    """What SQS and SNS count against their 256 KiB limit: the body and the attributes."""
    return len(message.body) + attributes_size(message_attributes(message, table))
