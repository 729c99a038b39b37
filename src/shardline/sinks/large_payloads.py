"""Messages over 256 KiB stored in S3, with a pointer sent instead (``large_payloads=s3://...``).

The pointer is the one the Amazon SQS/SNS Extended Client libraries write and read
(``amazon-sqs-extended-client`` for Python, the payload-offloading library for Java)::

    ["software.amazon.payloadoffloading.PayloadS3Pointer",
     {"s3BucketName": "bucket", "s3Key": "prefix/shardId-.../<event id>.json"}]

with the message attribute ``ExtendedPayloadSize`` (Number) holding the stored size, so
those libraries' receivers fetch the message transparently. The object name is derived
from the change (shard and event id): a replay overwrites the same object with the same
bytes. Objects are never deleted by shardline (a lifecycle rule on the prefix does that).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from shardline.errors import ConfigError
from shardline.sinks.notify import Outgoing

__all__ = ["POINTER_CLASS", "SIZE_ATTRIBUTE", "PayloadStore", "pointer_body"]

POINTER_CLASS: Final = "software.amazon.payloadoffloading.PayloadS3Pointer"
SIZE_ATTRIBUTE: Final = "ExtendedPayloadSize"


def pointer_body(bucket: str, key: str) -> bytes:
    """The Extended Client's pointer message for ``s3://bucket/key``."""
    return orjson.dumps([POINTER_CLASS, {"s3BucketName": bucket, "s3Key": key}])


@dataclass
class PayloadStore:
    """Where large messages go: ``s3://bucket/prefix``."""

    bucket: str
    prefix: str = ""
    client: Any = None

    @classmethod
    def from_url(cls, url: str, sink: str) -> PayloadStore:
        """Parse ``s3://bucket/prefix``; anything else is a :class:`ConfigError`."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigError(f"sink {sink}: large_payloads must look like s3://bucket/prefix")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, f"{prefix}/" if prefix else "")

    def object_key(self, message: Outgoing) -> str:
        """``<prefix><shard>/<event id>.json``: the same for a replayed change."""
        return f"{self.prefix}{message.record.shard_id}/{message.event_id}.json"

    def offload(self, message: Outgoing) -> Outgoing:
        """Store the message (PutObject, on the caller's thread); return its pointer."""
        key = self.object_key(message)
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=message.body, ContentType="application/json"
        )
        return replace(message, body=pointer_body(self.bucket, key), payload_size=len(message.body))

    def iam_statement(self) -> dict[str, Any]:
        """PutObject under the prefix."""
        return {"Effect": "Allow", "Action": ["s3:PutObject"],
                "Resource": f"arn:aws:s3:::{self.bucket}/{self.prefix}*"}  # fmt: skip
