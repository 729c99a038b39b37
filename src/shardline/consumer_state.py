"""What a :class:`~shardline.consumer.ShardConsumer` is doing, and what it needs from
its worker: the states, the host protocol and the settings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from shardline.leases.model import Lease


class ConsumerState(StrEnum):
    """Where a shard consumer is; the last five are end states, also passed to
    :meth:`ShardHost.consumer_finished` as the reason it ended."""

    WAITING_FOR_PARENTS = "waiting-for-parents"
    INITIALIZING = "initializing"
    PROCESSING = "processing"
    SHARD_ENDING = "shard-ending"
    SHUTTING_DOWN = "shutting-down"
    HANDING_OVER = "handing-over"
    SHARD_ENDED = "shard-ended"
    LEASE_LOST = "lease-lost"
    HANDED_OVER = "handed-over"
    SHUTDOWN = "shutdown"
    FAILED = "failed"


class ShardHost(Protocol):
    """What a consumer needs from its worker."""

    async def parents_done(self, lease: Lease) -> bool: ...

    async def still_holds(self, shard_id: str, token: str) -> bool: ...

    async def discover_children(self, shard_id: str) -> frozenset[str]: ...

    async def write_checkpoint(
        self, shard_id: str, token: str, value: str, sub: int, children: frozenset[str] | None
    ) -> None: ...

    async def hand_over(self, shard_id: str, token: str) -> None: ...

    async def consumer_finished(self, shard_id: str, token: str, reason: str) -> None: ...


@dataclass(frozen=True)
class ConsumerSettings:
    stream_arn: str
    max_records: int
    idle_time: float
    parent_poll_interval: float
    retry_base_delay: float
    retry_max_delay: float
    call_on_empty: bool = False
    processor_timeout: float | None = 300.0


class LeaseLost(Exception):
    """Internal signal: the lease is gone, stop the shard."""


class HandoffRequested(Exception):
    """Internal signal: another worker asked for the lease (a balance steal)."""


class ShutdownRequested(Exception):
    """Internal signal: the worker is stopping."""
