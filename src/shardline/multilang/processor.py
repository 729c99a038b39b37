"""MultiLangProcessor: one child process per held shard lease, spoken to over the protocol.

The core calls the processor's hooks; each hook becomes one protocol call to the shard's
child, answered by ``status``. Checkpoint requests the child sends meanwhile go to the
shard's :class:`~shardline.Checkpointer`, and the reply carries KCL's exception name.

A child that crashes, exits, breaks the protocol or exceeds ``timeoutInSeconds`` is
killed and the hook raises :class:`ChildFailedError`: the core retries the same batch
with backoff, and the retry starts a fresh child that is first sent ``initialize`` with
the shard's current checkpoint. Other shards are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from shardline.checkpoint import Checkpointer
from shardline.errors import (
    CheckpointDependencyError,
    CheckpointError,
    InvalidStateError,
    ShutdownError,
)
from shardline.multilang import protocol
from shardline.multilang.child import ChildFailedError, ChildProcess
from shardline.multilang.settings import ChildSettings
from shardline.processor import (
    AsyncRecordProcessor,
    InitializationInput,
    LeaseLostInput,
    ProcessRecordsInput,
    ShardEndedInput,
    ShutdownRequestedInput,
)

__all__ = ["ChildRegistry", "MultiLangProcessor", "processor_class"]

log = logging.getLogger("shardline.multilang")

#: After ``shutdownRequested`` was answered (or timed out): seconds for ``leaseLost``.
LEASE_LOST_AFTER_SHUTDOWN = 1.0


class ChildRegistry:
    """The live children of one daemon, one per shard.

    A child left over by a processor that ended without a final hook (its consumer
    failed) is killed when a new child starts for the same shard, and at daemon exit.
    """

    def __init__(self) -> None:
        self._children: dict[str, ChildProcess] = {}

    async def register(self, child: ChildProcess) -> None:
        stale = self._children.get(child.shard_id)
        self._children[child.shard_id] = child
        if stale is not None and stale is not child and not stale.exited:
            log.warning("shard %s: killing a stale child (pid %d)", child.shard_id, stale.pid)
            await stale.kill()

    def forget(self, child: ChildProcess) -> None:
        if self._children.get(child.shard_id) is child:
            del self._children[child.shard_id]

    async def kill_all(self) -> None:
        """Kill every child still running (daemon exit)."""
        children, self._children = list(self._children.values()), {}
        await asyncio.gather(*(child.kill() for child in children), return_exceptions=True)


class MultiLangProcessor(AsyncRecordProcessor):
    """Runs ``settings.command`` for one shard and speaks the MultiLang protocol to it."""

    def __init__(self, settings: ChildSettings, registry: ChildRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or ChildRegistry()
        self.shard_id = ""
        self.restarts = 0
        self._child: ChildProcess | None = None
        self._resume: tuple[str, int] = ("TRIM_HORIZON", 0)
        self._lease_gone = False

    # --- hooks -----------------------------------------------------------------------

    async def initialize(self, initialization: InitializationInput) -> None:
        """Start the child and send ``initialize``; a failure here is retried by the next hook."""
        self.shard_id = initialization.shard_id
        self._resume = (initialization.sequence_number, initialization.sub_sequence_number)
        try:
            await self._ensure_child(None)
        except ChildFailedError as exc:
            log.warning("shard %s: %s; the next call starts a new child", self.shard_id, exc)

    async def process_records(self, batch: ProcessRecordsInput) -> None:
        """Send ``processRecords``; raise so the core retries the batch if the child failed."""
        wires = [record.wire for record in batch.records]
        line = protocol.process_records(wires, batch.millis_behind_latest)
        await self._run(protocol.PROCESS_RECORDS, line, batch.checkpointer)
        self._raise_if_lease_gone()

    async def shard_ended(self, ended: ShardEndedInput) -> None:
        """Send ``shardEnded`` (the child must checkpoint SHARD_END), then end the child."""
        await self._run(protocol.SHARD_ENDED, protocol.shard_ended(), ended.checkpointer)
        await self._close_child()
        self._raise_if_lease_gone()

    async def lease_lost(self, lost: LeaseLostInput) -> None:
        """Send ``leaseLost`` to a running child, then end it."""
        child = self._live_child()
        if child is None:
            return
        timeout = self.settings.timeout or self.settings.exit_timeout
        await self._final_call(child, protocol.LEASE_LOST, protocol.lease_lost(), None, timeout)
        await self._close_child()

    async def shutdown_requested(self, request: ShutdownRequestedInput) -> None:
        """``shutdownRequested`` (bounded by the grace), then ``leaseLost``, then end the child."""
        child = self._live_child()
        if child is None:
            return
        grace = self.settings.shutdown_grace
        line = protocol.shutdown_requested()
        answered = await self._final_call(
            child, protocol.SHUTDOWN_REQUESTED, line, request.checkpointer, grace
        )
        if answered:
            await self._final_call(
                child, protocol.LEASE_LOST, protocol.lease_lost(), None, LEASE_LOST_AFTER_SHUTDOWN
            )
        await self._close_child(LEASE_LOST_AFTER_SHUTDOWN)

    # --- the child -------------------------------------------------------------------

    def _live_child(self) -> ChildProcess | None:
        child = self._child
        return child if child is not None and not child.exited else None

    async def _ensure_child(self, checkpointer: Checkpointer | None) -> ChildProcess:
        """The running child, or a new one that has answered ``initialize``."""
        child = self._live_child()
        if child is not None:
            return child
        if self._child is not None:
            await self._discard()
        sequence, sub = self._resume_point(checkpointer)
        child = await ChildProcess.start(self.shard_id, self.settings.command, self.settings.env)
        self._child = child
        await self.registry.register(child)
        line = protocol.initialize(self.shard_id, sequence, sub)
        await self._guarded(child, protocol.INITIALIZE, line, None, self.settings.timeout)
        return child

    def _resume_point(self, checkpointer: Checkpointer | None) -> tuple[str, int]:
        if checkpointer is None:
            return self._resume
        self.restarts += 1
        return (checkpointer.last_checkpoint, 0)

    async def _run(self, action: str, line: bytes, checkpointer: Checkpointer) -> None:
        child = await self._ensure_child(checkpointer)
        await self._guarded(child, action, line, checkpointer, self.settings.timeout)

    async def _guarded(
        self,
        child: ChildProcess,
        action: str,
        line: bytes,
        checkpointer: Checkpointer | None,
        timeout: float | None,
    ) -> None:
        """One call; on any failure the child is killed and ChildFailedError raised."""
        try:
            await self._call(child, action, line, checkpointer, timeout)
        except ChildFailedError as exc:
            where = self._resume[0] if checkpointer is None else checkpointer.last_checkpoint
            log.warning(
                "shard %s: %s; the next attempt starts a new child from checkpoint %s",
                self.shard_id,
                exc,
                where,
            )
            await self._discard()
            raise
        except BaseException:
            self._abandon()
            raise

    async def _final_call(
        self,
        child: ChildProcess,
        action: str,
        line: bytes,
        checkpointer: Checkpointer | None,
        timeout: float,
    ) -> bool:
        """A call at the end of the lease: failures are logged, never raised."""
        try:
            await self._call(child, action, line, checkpointer, timeout)
        except ChildFailedError as exc:
            log.warning("shard %s: %s", self.shard_id, exc)
            return False
        except BaseException:
            self._abandon()
            raise
        return True

    async def _call(
        self,
        child: ChildProcess,
        action: str,
        line: bytes,
        checkpointer: Checkpointer | None,
        timeout: float | None,
    ) -> None:
        exchange = self._exchange(child, action, line, checkpointer)
        if timeout is None:
            await exchange
            return
        try:
            await asyncio.wait_for(exchange, timeout)
        except TimeoutError:
            raise ChildFailedError(
                f"child of shard {self.shard_id} did not answer {action} within {timeout:g}s"
            ) from None

    async def _exchange(
        self, child: ChildProcess, action: str, line: bytes, checkpointer: Checkpointer | None
    ) -> None:
        await child.send(line)
        while True:
            message = await child.receive()
            if isinstance(message, protocol.CheckpointRequest):
                error = await self._checkpoint(message, checkpointer)
                await child.send(protocol.checkpoint_reply(message, error))
            elif message.response_for == action:
                return
            else:
                raise ChildFailedError(
                    f"child of shard {self.shard_id} answered {message.response_for!r} "
                    f"while {action!r} was expected"
                )

    async def _checkpoint(
        self, request: protocol.CheckpointRequest, checkpointer: Checkpointer | None
    ) -> str | None:
        """Do the child's checkpoint; KCL's exception name on failure, else None."""
        if checkpointer is None:
            return InvalidStateError.kcl_name
        try:
            await checkpointer.checkpoint_async(
                request.sequence_number, request.sub_sequence_number or 0
            )
        except ShutdownError as exc:
            self._lease_gone = True
            log.info("shard %s: checkpoint refused, the lease is gone: %s", self.shard_id, exc)
            return exc.kcl_name
        except CheckpointError as exc:
            log.warning("shard %s: checkpoint failed: %s", self.shard_id, exc)
            return exc.kcl_name
        except Exception as exc:
            log.warning("shard %s: checkpoint failed: %r", self.shard_id, exc)
            return CheckpointDependencyError.kcl_name
        return None

    def _raise_if_lease_gone(self) -> None:
        if self._lease_gone:
            raise ShutdownError(f"the lease of shard {self.shard_id} was lost while checkpointing")

    async def _close_child(self, timeout: float | None = None) -> None:
        child, self._child = self._child, None
        if child is not None:
            self.registry.forget(child)
            await child.close(self.settings.exit_timeout if timeout is None else timeout)

    async def _discard(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            self.registry.forget(child)
            await child.kill()

    def _abandon(self) -> None:
        """Cancelled mid-call: kill the child at once, without awaiting anything."""
        child, self._child = self._child, None
        if child is not None:
            self.registry.forget(child)
            if not child.exited:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()


def processor_class(
    settings: ChildSettings, registry: ChildRegistry | None = None
) -> type[MultiLangProcessor]:
    """A MultiLangProcessor subclass bound to ``settings``, for ``shardline.Consumer``."""
    shared = registry or ChildRegistry()

    class BoundMultiLangProcessor(MultiLangProcessor):
        def __init__(self) -> None:
            super().__init__(settings, shared)

    return BoundMultiLangProcessor
