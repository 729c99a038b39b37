"""Built-in sinks: the idempotent, ordered, crash-safe write into the place changes must go.

The contract every sink keeps is in :mod:`shardline.sinks.base`; a sink is named by a URL
(:func:`sink_from_url`) or built directly and given to :class:`shardline.Consumer`::

    from shardline import Consumer
    from shardline.sinks import PostgresSink

    Consumer(sinks=[PostgresSink("postgresql://app@db/app", table="orders")],
             table="Orders", application="orders-pg").run()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shardline._lazy import lazy_getattr
from shardline.sinks.base import (
    KeyAttribute,
    ShardSink,
    Sink,
    SinkContext,
    SinkError,
    SnapshotRow,
    Transform,
)

if TYPE_CHECKING:
    from shardline.sinks.dynamodb import DynamoDBSink
    from shardline.sinks.eventbridge import EventBridgeSink
    from shardline.sinks.formats import MessageFormat
    from shardline.sinks.postgres import PostgresSink
    from shardline.sinks.registry import sink_from_url
    from shardline.sinks.sns import SnsSink
    from shardline.sinks.sqs import SqsSink
    from shardline.sinks.webhook import WebhookSink

__all__ = [
    "DynamoDBSink",
    "EventBridgeSink",
    "KeyAttribute",
    "MessageFormat",
    "PostgresSink",
    "ShardSink",
    "Sink",
    "SinkContext",
    "SinkError",
    "SnapshotRow",
    "SnsSink",
    "SqsSink",
    "Transform",
    "WebhookSink",
    "sink_from_url",
]

__getattr__ = lazy_getattr(
    __name__,
    {
        "DynamoDBSink": "shardline.sinks.dynamodb",
        "EventBridgeSink": "shardline.sinks.eventbridge",
        "MessageFormat": "shardline.sinks.formats",
        "PostgresSink": "shardline.sinks.postgres",
        "SnsSink": "shardline.sinks.sns",
        "SqsSink": "shardline.sinks.sqs",
        "WebhookSink": "shardline.sinks.webhook",
        "sink_from_url": "shardline.sinks.registry",
    },
    globals(),
)
