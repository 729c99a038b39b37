from __future__ import annotations

import asyncio

import pytest

from shardline.checkpoint import Checkpointer
from shardline.errors import CheckpointValueError, InvalidStateError, ShutdownError


def make(initial: str = "TRIM_HORIZON") -> tuple[Checkpointer, list[str]]:
    written: list[str] = []

    async def write(value: str, sub: int) -> None:
        written.append(value)

    return Checkpointer("shard", write, asyncio.get_running_loop(), initial=initial), written


async def test_checkpoint_without_argument_records_the_last_delivered() -> None:
    cp, written = make()
    cp.delivered_up_to("00000000000000000000105")
    await cp.checkpoint_async()
    assert written == ["00000000000000000000105"]
    await cp.checkpoint_async()
    assert written == ["00000000000000000000105"], "the same value again is a no-op"


async def test_cannot_checkpoint_ahead_of_delivery_or_backwards() -> None:
    cp, _ = make()
    cp.delivered_up_to("200")
    with pytest.raises(CheckpointValueError):
        await cp.checkpoint_async("300")
    await cp.checkpoint_async("150")
    with pytest.raises(CheckpointValueError):
        await cp.checkpoint_async("120")
    with pytest.raises(CheckpointValueError):
        await cp.checkpoint_async("not-a-number")


async def test_shard_end_is_recorded_after_mark() -> None:
    cp, written = make()
    cp.delivered_up_to("200")
    with pytest.raises(CheckpointValueError):
        await cp.checkpoint_async("SHARD_END")
    cp.mark_shard_end()
    await cp.checkpoint_async("200")  # the last sequence number at shard end means SHARD_END
    assert written == ["SHARD_END"]


async def test_rewind_after_a_failed_batch() -> None:
    cp, _ = make()
    cp.delivered_up_to("200")
    cp.rewind_to("TRIM_HORIZON")
    with pytest.raises(CheckpointValueError):
        await cp.checkpoint_async("200")


async def test_disabled_after_lease_loss() -> None:
    cp, _ = make()
    cp.delivered_up_to("200")
    cp.disable()
    with pytest.raises(ShutdownError):
        await cp.checkpoint_async()


async def test_checkpoint_before_any_delivery_is_a_no_op() -> None:
    cp, written = make()
    await cp.checkpoint_async()
    assert written == []


async def test_sync_checkpoint_from_a_thread_and_refused_on_the_loop() -> None:
    cp, written = make()
    cp.delivered_up_to("300")
    await asyncio.to_thread(cp.checkpoint)
    assert written == ["300"]
    with pytest.raises(InvalidStateError, match="checkpoint_async"):
        cp.checkpoint()


def test_sync_checkpoint_gives_up_once_the_loop_no_longer_runs() -> None:
    loop = asyncio.new_event_loop()  # never run: like a worker whose loop has stopped
    written: list[str] = []

    async def write(value: str, sub: int) -> None:
        written.append(value)

    cp = Checkpointer("shard", write, loop, initial="TRIM_HORIZON")
    cp.delivered_up_to("300")
    with pytest.raises(ShutdownError, match="worker stopped before this checkpoint"):
        cp.checkpoint()  # would wait forever on a stopped loop
    loop.run_until_complete(asyncio.sleep(0.01))  # a loop that runs again drops the write
    loop.close()
    with pytest.raises(ShutdownError, match="worker stopped before this checkpoint"):
        cp.checkpoint()
    assert written == []
