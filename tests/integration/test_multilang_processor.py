"""MultiLangProcessor against a real child process (tests/compat/fake_child.py).

The checkpointer is real; its lease-table write is a list, so these tests need no local
stack. Faults (crash, hang, protocol break) are what the local stack cannot produce.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shardline.checkpoint import Checkpointer
from shardline.errors import ShutdownError
from shardline.multilang import ChildFailedError, ChildSettings, MultiLangProcessor
from shardline.processor import (
    InitializationInput,
    LeaseLostInput,
    ProcessRecordsInput,
    ShardEndedInput,
    ShutdownRequestedInput,
)
from shardline.records import StreamRecord

FAKE_CHILD = str(Path(__file__).resolve().parents[1] / "compat" / "fake_child.py")
SHARD = "shardId-00000001700000000000-aaaaaaaa"


class Harness:
    def __init__(self, tmp_path: Path, mode: str = "", **settings: Any) -> None:
        self.log_path = tmp_path / "child.jsonl"
        env = {
            **os.environ,
            "FAKE_CHILD_LOG": str(self.log_path),
            "FAKE_CHILD_MODE": mode,
            "FAKE_CHILD_STATE": str(tmp_path),
        }
        self.settings = ChildSettings((sys.executable, FAKE_CHILD), env=env, **settings)
        self.processor = MultiLangProcessor(self.settings)
        self.writes: list[tuple[str, int]] = []
        self.refuse_with: Exception | None = None
        self.checkpointer = Checkpointer(
            SHARD, self._write, asyncio.get_running_loop(), initial="TRIM_HORIZON"
        )

    async def _write(self, value: str, sub: int) -> None:
        if self.refuse_with is not None:
            raise self.refuse_with
        self.writes.append((value, sub))

    def received(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def actions(self) -> list[str]:
        return [m["action"] for m in self.received() if "action" in m]

    def pids(self) -> set[int]:
        return {m["pid"] for m in self.received()}

    async def start(self) -> None:
        await self.processor.initialize(InitializationInput(SHARD, "TRIM_HORIZON", 0))

    def batch(self, first: int, count: int) -> ProcessRecordsInput:
        records = [StreamRecord(raw(first + i), SHARD) for i in range(count)]
        self.checkpointer.delivered_up_to(records[-1].sequence_number)
        return ProcessRecordsInput(SHARD, records, self.checkpointer, 42)


def raw(n: int) -> dict[str, Any]:
    return {
        "eventID": f"e{n}",
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": 1700000000.5,
            "Keys": {"pk": {"S": f"k{n}"}},
            "SequenceNumber": str(1000 + n),
            "SizeBytes": 10,
            "StreamViewType": "KEYS_ONLY",
        },
    }


async def test_a_lease_from_initialize_to_shard_end(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.start()
    await h.processor.process_records(h.batch(0, 3))
    await h.processor.process_records(h.batch(3, 2))
    h.checkpointer.mark_shard_end()
    await h.processor.shard_ended(ShardEndedInput(SHARD, h.checkpointer))
    assert h.actions() == ["initialize", "processRecords", "processRecords", "shardEnded"]
    assert h.writes == [("1002", 0), ("1004", 0), ("SHARD_END", 0)]
    replies = [m["reply"] for m in h.received() if "reply" in m]
    assert replies[0] == {
        "action": "checkpoint",
        "sequenceNumber": "1002",
        "subSequenceNumber": None,
        "error": None,
    }
    initialize = h.received()[0]
    assert initialize["sequenceNumber"] == "TRIM_HORIZON"
    assert initialize["subSequenceNumber"] == 0
    assert h.processor._child is None, "the child is ended after shardEnded"
    assert len(h.pids()) == 1


async def test_a_crashed_child_is_restarted_from_the_checkpoint(tmp_path: Path) -> None:
    h = Harness(tmp_path, mode="crash-once")
    await h.start()
    with pytest.raises(ChildFailedError, match="exit code 3"):
        await h.processor.process_records(h.batch(0, 3))
    h.checkpointer.rewind_to("TRIM_HORIZON")
    await h.processor.process_records(h.batch(0, 3))  # the core's retry
    initializes = [m for m in h.received() if m.get("action") == "initialize"]
    assert len(initializes) == 2
    assert initializes[1]["sequenceNumber"] == "TRIM_HORIZON"
    assert h.writes == [("1002", 0)]
    assert len(h.pids()) == 2
    assert h.processor.restarts == 1


async def test_restart_sends_the_last_checkpoint(tmp_path: Path) -> None:
    h = Harness(tmp_path, mode="crash-once")
    h.log_path.write_text("")
    (tmp_path / "crash-once").touch()  # no crash on the first batch
    await h.start()
    await h.processor.process_records(h.batch(0, 3))
    assert h.processor._child is not None
    h.processor._child.process.kill()
    await h.processor._child.process.wait()
    await h.processor.process_records(h.batch(3, 2))
    initializes = [m for m in h.received() if m.get("action") == "initialize"]
    assert [m["sequenceNumber"] for m in initializes] == ["TRIM_HORIZON", "1002"]


async def test_a_hung_child_times_out_and_is_replaced(tmp_path: Path) -> None:
    h = Harness(tmp_path, mode="hang-once", timeout=1.0)
    await h.start()
    started = time.monotonic()
    with pytest.raises(ChildFailedError, match="within 1s"):
        await h.processor.process_records(h.batch(0, 2))
    assert time.monotonic() - started < 3
    await h.processor.process_records(h.batch(0, 2))
    assert h.writes == [("1001", 0)]


async def test_a_wrong_status_breaks_the_protocol(tmp_path: Path) -> None:
    h = Harness(tmp_path, mode="wrong-status-once")
    await h.start()
    with pytest.raises(ChildFailedError, match="'initialize' while 'processRecords'"):
        await h.processor.process_records(h.batch(0, 2))
    await h.processor.process_records(h.batch(2, 2))
    assert len(h.pids()) == 2


async def test_stray_output_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shardline.multilang")
    h = Harness(tmp_path, mode="stray")
    await h.start()
    await h.processor.process_records(h.batch(0, 2))
    await h.processor.lease_lost(LeaseLostInput(SHARD))
    text = caplog.text
    assert "skipping unexpected line on the child's stdout: a stray line on stdout" in text
    assert f"shard {SHARD}: a line on stderr" in text
    assert h.writes == [("1001", 0)]


async def test_checkpoint_errors_carry_kcl_names(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.start()
    h.refuse_with = ShutdownError("gone")
    with pytest.raises(ShutdownError):
        await h.processor.process_records(h.batch(0, 2))
    replies = [m["reply"] for m in h.received() if "reply" in m]
    assert replies[-1]["error"] == "ShutdownException"
    await h.processor.lease_lost(LeaseLostInput(SHARD))
    assert h.actions()[-1] == "leaseLost"


async def test_a_checkpoint_past_delivery_is_an_illegal_argument(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.start()
    batch = h.batch(0, 2)
    h.checkpointer.rewind_to("TRIM_HORIZON")  # nothing delivered: 1001 is out of range
    await h.processor.process_records(batch)
    replies = [m["reply"] for m in h.received() if "reply" in m]
    assert replies[-1]["error"] == "IllegalArgumentException"


async def test_shutdown_sends_shutdown_requested_then_lease_lost(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.start()
    await h.processor.process_records(h.batch(0, 2))
    await h.processor.shutdown_requested(ShutdownRequestedInput(SHARD, h.checkpointer))
    assert h.actions() == ["initialize", "processRecords", "shutdownRequested", "leaseLost"]
    assert h.processor._child is None


async def test_a_slow_shutdown_is_bounded_by_the_grace(tmp_path: Path) -> None:
    h = Harness(tmp_path, mode="slow-shutdown", shutdown_grace=0.5)
    await h.start()
    await h.processor.process_records(h.batch(0, 2))
    child = h.processor._child
    assert child is not None
    started = time.monotonic()
    await h.processor.shutdown_requested(ShutdownRequestedInput(SHARD, h.checkpointer))
    assert time.monotonic() - started < 3
    assert child.exited


async def test_a_child_that_cannot_start_fails_the_call(tmp_path: Path) -> None:
    processor = MultiLangProcessor(ChildSettings((str(tmp_path / "missing"),)))
    await processor.initialize(InitializationInput(SHARD, "TRIM_HORIZON", 0))
    checkpointer = Checkpointer(
        SHARD, _no_write, asyncio.get_running_loop(), initial="TRIM_HORIZON"
    )
    batch = ProcessRecordsInput(SHARD, [StreamRecord(raw(0), SHARD)], checkpointer, 0)
    with pytest.raises(ChildFailedError, match="cannot start"):
        await processor.process_records(batch)


async def _no_write(value: str, sub: int) -> None:
    raise AssertionError("no checkpoint expected")
