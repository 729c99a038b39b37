"""What a shard consumer needs from its worker (:class:`ShardHost`), and its settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shardline.consumer.state import EndReason
from shardline.leases.model import Lease

__all__ = ["ConsumerSettings", "ShardHost"]


class ShardHost(Protocol):
    """What a consumer needs from its worker."""

    async def parents_done(self, lease: Lease) -> bool: ...

    async def still_holds(self, shard_id: str, token: str) -> bool: ...

    async def discover_children(self, shard_id: str) -> frozenset[str]: ...

    async def write_checkpoint(
        self, shard_id: str, token: str, value: str, sub: int, children: frozenset[str] | None
    ) -> None: ...

    async def hand_over(self, shard_id: str, token: str) -> None: ...

    async def consumer_finished(self, shard_id: str, token: str, reason: EndReason) -> None: ...


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
