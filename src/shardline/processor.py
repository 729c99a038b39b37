"""Record processors: the KCL v3 lifecycle, and adapters for plain functions.

One processor instance serves one shard lease, from ``initialize`` to one of
``lease_lost``, ``shard_ended`` or ``shutdown_requested``. Synchronous processors run
on a thread (one ordered lane per shard), so a slow processor never delays lease
renewal; ``async def`` processors run on the event loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shardline.errors import ConfigError

if TYPE_CHECKING:
    from shardline.checkpoint import Checkpointer
    from shardline.records import StreamRecord


@dataclass(frozen=True)
class InitializationInput:
    """Where this shard resumes: its lease's checkpoint (a sequence number or sentinel).

    ``lease_counter`` is the lease's ``leaseCounter`` when this worker acquired it (for
    diagnostics: it orders the holders of one lease).
    """

    shard_id: str
    sequence_number: str
    sub_sequence_number: int = 0
    lease_counter: int | None = None


@dataclass(frozen=True)
class ProcessRecordsInput:
    """One batch of records of one shard, in sequence order."""

    shard_id: str
    records: list[StreamRecord]
    checkpointer: Checkpointer
    millis_behind_latest: int


@dataclass(frozen=True)
class LeaseLostInput:
    """The lease moved to another worker; checkpointing is no longer possible."""

    shard_id: str


@dataclass(frozen=True)
class ShardEndedInput:
    """Every record of the shard was delivered; the processor must checkpoint SHARD_END."""

    shard_id: str
    checkpointer: Checkpointer


@dataclass(frozen=True)
class ShutdownRequestedInput:
    """The worker is shutting down; the processor may checkpoint one last time."""

    shard_id: str
    checkpointer: Checkpointer


class RecordProcessor:
    """Base class of synchronous processors; override what you need.

    ``process_records`` must be overridden. The default ``shard_ended`` checkpoints
    SHARD_END, as KCL requires; the other hooks do nothing.
    """

    def initialize(self, initialization: InitializationInput) -> None:
        """Called once before the first batch."""

    def process_records(self, batch: ProcessRecordsInput) -> None:
        """Handle one batch; checkpoint with ``batch.checkpointer`` when it suits you."""
        raise NotImplementedError

    def lease_lost(self, lost: LeaseLostInput) -> None:
        """The shard now belongs to another worker; clean up, do not checkpoint."""

    def shard_ended(self, ended: ShardEndedInput) -> None:
        """Checkpoint SHARD_END so the shard's children may start."""
        ended.checkpointer.checkpoint()

    def shutdown_requested(self, request: ShutdownRequestedInput) -> None:
        """The worker is stopping; checkpoint progress not yet recorded, if any."""


class AsyncRecordProcessor:
    """Base class of ``async def`` processors, run on the event loop.

    As :class:`RecordProcessor`: ``process_records`` must be overridden, the default
    ``shard_ended`` checkpoints SHARD_END, the other hooks do nothing.
    """

    async def initialize(self, initialization: InitializationInput) -> None:
        """Called once before the first batch."""

    async def process_records(self, batch: ProcessRecordsInput) -> None:
        """Handle one batch; checkpoint with ``batch.checkpointer`` when it suits you."""
        raise NotImplementedError

    async def lease_lost(self, lost: LeaseLostInput) -> None:
        """The shard now belongs to another worker."""

    async def shard_ended(self, ended: ShardEndedInput) -> None:
        """Checkpoint SHARD_END so the shard's children may start."""
        await ended.checkpointer.checkpoint_async()

    async def shutdown_requested(self, request: ShutdownRequestedInput) -> None:
        """The worker is stopping."""


AnyProcessor = RecordProcessor | AsyncRecordProcessor
ProcessorFactory = Callable[[], AnyProcessor]
BatchHandler = Callable[[list["StreamRecord"]], Any]
AsyncBatchHandler = Callable[[list["StreamRecord"]], Awaitable[Any]]


class FunctionProcessor(RecordProcessor):
    """Adapts ``handle(records)``: checkpoint after it returns; a raise retries the batch."""

    def __init__(self, handle: BatchHandler) -> None:
        self.handle = handle

    def process_records(self, batch: ProcessRecordsInput) -> None:
        self.handle(batch.records)
        batch.checkpointer.checkpoint()


class AsyncFunctionProcessor(AsyncRecordProcessor):
    """Adapts ``async def handle(records)`` the same way."""

    def __init__(self, handle: AsyncBatchHandler) -> None:
        self.handle = handle

    async def process_records(self, batch: ProcessRecordsInput) -> None:
        await self.handle(batch.records)
        await batch.checkpointer.checkpoint_async()


def processor_factory(target: object) -> ProcessorFactory:
    """Turn what the user gave into a per-shard processor factory.

    A processor class, or any callable that takes no arguments (a factory returning a
    processor), is used as the factory; a function ``handle(records)``, sync or async
    (including objects with an ``async def __call__``), is adapted.
    """
    if inspect.isclass(target):
        if issubclass(target, RecordProcessor | AsyncRecordProcessor):
            return target
        raise ConfigError(
            f"{target.__name__} is a class but not a RecordProcessor or AsyncRecordProcessor"
        )
    if isinstance(target, RecordProcessor | AsyncRecordProcessor):
        raise ConfigError(
            "pass the processor class (or a factory), not an instance: each shard needs its own"
        )
    if not callable(target):
        raise ConfigError(
            f"{target!r} is not callable: give a function handle(records) or a processor"
        )
    if _takes_no_arguments(target):
        return _checked_factory(target)
    if _is_async_callable(target):
        async_handle: AsyncBatchHandler = target
        return lambda: AsyncFunctionProcessor(async_handle)
    sync_handle: BatchHandler = target
    return lambda: FunctionProcessor(sync_handle)


def _is_async_callable(target: Callable[..., Any]) -> bool:
    call = getattr(target, "__call__", None)  # noqa: B004 - we want the method itself
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(call)


def _takes_no_arguments(target: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in parameters
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return not required and not any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _checked_factory(factory: Callable[[], object]) -> ProcessorFactory:
    def make() -> AnyProcessor:
        processor = factory()
        if not isinstance(processor, RecordProcessor | AsyncRecordProcessor):
            raise ConfigError(
                f"the processor factory returned {type(processor).__name__}, "
                "not a RecordProcessor or AsyncRecordProcessor"
            )
        return processor

    return make
