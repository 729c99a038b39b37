"""ShardConsumer recovery paths, driven by a scripted Streams fake.

The fake exists for cases the local stack cannot produce yet: trimmed data
(TrimmedDataAccessException mid-shard) and an iterator that expires between two reads
at a chosen moment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shardline.consumer import ConsumerSettings, EndReason, ShardConsumer
from shardline.errors import (
    ExpiredIteratorError,
    ResourceNotFoundError,
    ThrottledError,
    TrimmedDataAccessError,
)
from shardline.leases.model import SHARD_END, Lease
from shardline.processor import FunctionProcessor
from shardline.records import StreamRecord
from shardline.streams.model import RecordsPage
from shardline.streams.wire import record_from_mapping


def record(sequence: int) -> dict[str, Any]:
    return {
        "eventID": f"e{sequence}",
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"pk": {"S": f"k{sequence}"}},
            "SequenceNumber": f"{sequence:021d}",
            "SizeBytes": 10,
        },
    }


class ScriptedStreams:
    """Serves one closed shard of records 1..n, two per page; faults on request."""

    def __init__(self, n: int) -> None:
        self.records = [record_from_mapping(record(i)) for i in range(1, n + 1)]
        self.iterator_requests: list[tuple[str, str | None]] = []
        self.faults: dict[int, Exception] = {}  # position -> error raised once on reading it
        self.trimmed_below = 0

    async def get_shard_iterator(
        self, arn: str, shard_id: str, kind: str, sequence_number: str | None = None
    ) -> str:
        self.iterator_requests.append((kind, sequence_number))
        if kind == "TRIM_HORIZON":
            return str(self.trimmed_below)
        assert sequence_number is not None
        position = int(sequence_number) - (1 if kind == "AT_SEQUENCE_NUMBER" else 0)
        if position < self.trimmed_below:
            raise TrimmedDataAccessError("TrimmedDataAccessException", "trimmed")
        return str(position)

    async def get_records(self, iterator: str, limit: int) -> RecordsPage:
        position = int(iterator)
        fault = self.faults.pop(position, None)
        if fault is not None:
            raise fault
        page = self.records[position : position + 2]
        following = position + len(page)
        return RecordsPage(page, None if following >= len(self.records) else str(following))


class Host:
    def __init__(self) -> None:
        self.checkpoints: list[str] = []
        self.finished: list[str] = []

    async def parents_done(self, lease: Lease) -> bool:
        return True

    async def still_holds(self, shard_id: str, token: str) -> bool:
        return True

    async def discover_children(self, shard_id: str) -> frozenset[str]:
        return frozenset()

    async def write_checkpoint(
        self, shard_id: str, token: str, value: str, sub: int, children: frozenset[str] | None
    ) -> None:
        self.checkpoints.append(value)

    async def hand_over(self, shard_id: str, token: str) -> None:
        raise AssertionError("nobody asks for these leases")

    async def consumer_finished(self, shard_id: str, token: str, reason: EndReason) -> None:
        self.finished.append(reason)


async def consume(
    streams: ScriptedStreams, checkpoint: str = "TRIM_HORIZON"
) -> tuple[Host, list[int]]:
    seen: list[int] = []

    def handle(records: list[StreamRecord]) -> None:
        seen.extend(int(r.sequence_number) for r in records)

    host = Host()
    with ThreadPoolExecutor(2) as executor:
        consumer = ShardConsumer(
            Lease(key="shardId-00000001700000000000-00000001", checkpoint=checkpoint),
            "token",
            host=host,
            streams=streams,  # type: ignore[arg-type]
            processor=FunctionProcessor(handle),
            executor=executor,
            settings=ConsumerSettings("arn", 1000, 0.0, 0.01, 0.01, 0.05),
        )
        await asyncio.wait_for(consumer.run(), 10)
    return host, seen


async def test_reads_to_shard_end_and_checkpoints_it() -> None:
    host, seen = await consume(ScriptedStreams(5))
    assert seen == [1, 2, 3, 4, 5]
    assert host.checkpoints[-1] == SHARD_END
    assert host.finished == ["shard-ended"]


async def test_expired_iterator_resumes_after_the_last_delivered_record() -> None:
    streams = ScriptedStreams(6)
    streams.faults[2] = ExpiredIteratorError("ExpiredIteratorException", "expired")
    _, seen = await consume(streams)
    assert seen == [1, 2, 3, 4, 5, 6]
    assert ("AFTER_SEQUENCE_NUMBER", f"{2:021d}") in streams.iterator_requests


async def test_resume_from_a_checkpoint_never_redelivers_it() -> None:
    streams = ScriptedStreams(6)
    _, seen = await consume(streams, checkpoint=f"{3:021d}")
    assert seen == [4, 5, 6]
    assert streams.iterator_requests[0] == ("AFTER_SEQUENCE_NUMBER", f"{3:021d}")


async def test_trimmed_data_restarts_at_trim_horizon_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    streams = ScriptedStreams(8)
    streams.trimmed_below = 5  # records 1..5 are gone; the checkpoint was at 2
    with caplog.at_level(logging.ERROR, logger="shardline.consumer"):
        host, seen = await consume(streams, checkpoint=f"{2:021d}")
    assert seen == [6, 7, 8]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("trimmed" in m and f"{2:021d}" in m and "LOST" in m for m in errors)
    assert any(f"after {2:021d} and before {6:021d}" in m for m in errors), errors
    assert host.checkpoints[-1] == SHARD_END


async def test_a_shard_gone_from_the_stream_is_ended_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    streams = ScriptedStreams(4)
    streams.faults[0] = ResourceNotFoundError("ResourceNotFoundException", "no such shard")
    with caplog.at_level(logging.ERROR, logger="shardline.consumer"):
        host, seen = await consume(streams)
    assert seen == []
    assert host.checkpoints == [SHARD_END]
    assert any("gone from the stream" in r.getMessage() for r in caplog.records)


async def test_a_hanging_processor_is_reported_and_waited_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    streams = ScriptedStreams(2)
    seen: list[int] = []

    def slow(records: list[StreamRecord]) -> None:
        time.sleep(0.3)
        seen.extend(int(r.sequence_number) for r in records)

    host = Host()
    with ThreadPoolExecutor(2) as executor, caplog.at_level(logging.ERROR):
        consumer = ShardConsumer(
            Lease(key="shardId-00000001700000000000-00000001"),
            "token",
            host=host,
            streams=streams,  # type: ignore[arg-type]
            processor=FunctionProcessor(slow),
            executor=executor,
            settings=ConsumerSettings("arn", 1000, 0.0, 0.01, 0.01, 0.05, processor_timeout=0.1),
        )
        await asyncio.wait_for(consumer.run(), 10)
    assert seen == [1, 2], "nothing skipped"
    assert any("looks stuck" in r.getMessage() for r in caplog.records)


async def test_a_long_throttling_burst_slows_the_shard_but_does_not_end_it() -> None:
    streams = ScriptedStreams(4)
    streams.faults[2] = ThrottledError("LimitExceededException", "slow down")
    host, seen = await consume(streams)
    assert seen == [1, 2, 3, 4]
    assert host.finished == ["shard-ended"]
