"""Where a shard consumer is (:class:`ConsumerState`) and why it ended (:class:`EndReason`).

The transitions, owned by :class:`~shardline.consumer.shard.ShardConsumer`::

    waiting-for-parents -> initializing -> processing -> shard-ending -> ended
                                     \\-> shutting-down -> ended     (the worker stops)
                                     \\-> handing-over -> ended      (a balance steal)
    any state -> ended                                               (lease lost, failure)
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ConsumerState", "EndReason"]


class ConsumerState(StrEnum):
    """What a shard consumer is doing."""

    WAITING_FOR_PARENTS = "waiting-for-parents"
    INITIALIZING = "initializing"
    PROCESSING = "processing"
    SHARD_ENDING = "shard-ending"
    SHUTTING_DOWN = "shutting-down"
    HANDING_OVER = "handing-over"
    ENDED = "ended"


class EndReason(StrEnum):
    """Why a shard consumer ended; passed to ``ShardHost.consumer_finished``."""

    SHARD_ENDED = "shard-ended"
    LEASE_LOST = "lease-lost"
    HANDED_OVER = "handed-over"
    SHUTDOWN = "shutdown"
    FAILED = "failed"
