"""The archive under the delivery path: batch hints, and no checkpoint past a failed write."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import Any

import pytest

from shardline.delivery import DeliveryConfig
from shardline.errors import ConfigError
from shardline.sinks import archive_store
from shardline.sinks.base import BatchHint, Sink
from shardline.sinks.batching import apply_batch_hints, merged_hint
from shardline.sinks.registry import sink_from_url
from tests.integration.support import create_stream_table, dynamodb, lease_items, unique
from tests.sinks.support import RunningSinks, wait_for


def hinted(hint: BatchHint | None) -> Sink:
    sink = sink_from_url("file:///tmp/x")
    sink.batch_hint = hint
    return sink


def test_hints_size_batches_only_when_the_user_did_not() -> None:
    sinks = [hinted(BatchHint(50_000, 1 << 20, 120.0, ordered=True)), hinted(None)]
    config = apply_batch_hints(DeliveryConfig(), sinks)
    assert (config.batch_size, config.maximum_batching_window_in_seconds) == (50_000, 120.0)
    assert config.maximum_batch_bytes == 1 << 20 and config.sink_batching
    own = DeliveryConfig(batch_size=500)
    assert apply_batch_hints(own, sinks) == own
    with pytest.raises(ConfigError, match="parallelization_factor 1"):
        apply_batch_hints(DeliveryConfig(parallelization_factor=2), sinks)


def test_several_hints_take_the_smallest_wish() -> None:
    merged = merged_hint([BatchHint(10, None, 60.0), BatchHint(100, 1024, 5.0, ordered=True)])
    assert merged == BatchHint(10, 1024, 5.0, ordered=True)
    with pytest.raises(ConfigError):
        DeliveryConfig(batch_size=50_000)  # Lambda's cap still holds for users


@pytest.mark.integration
async def test_no_checkpoint_past_a_write_that_is_not_durable(
    local_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = unique("full")
    create_stream_table(local_stack.endpoint_url, table)
    failures: list[int] = []
    full = [True]
    original = archive_store._write_synced

    def write_synced(path: Path, data: bytes) -> None:
        if full[0]:
            failures.append(1)
            raise OSError(errno.ENOSPC, "No space left on device")
        original(path, data)

    monkeypatch.setattr(archive_store, "_write_synced", write_synced)

    def checkpoints(application: str) -> list[str]:
        items = lease_items(local_stack.endpoint_url, application)
        return [str(i.get("checkpoint", {}).get("S", "")) for i in items]

    sink = sink_from_url(f"file://{tmp_path}?format=jsonl&roll_seconds=0.2")
    client = dynamodb(local_stack.endpoint_url)
    async with RunningSinks(local_stack, table, [sink]) as running:
        for i in range(20):
            client.put_item(TableName=table, Item={"pk": {"S": f"k{i}"}})
        await wait_for(lambda: len(failures) >= 3, 60, "writes failing on a full disk")
        assert not [c for c in checkpoints(running.application) if c.isdigit()]
        assert not await asyncio.to_thread(lambda: list(tmp_path.rglob("*.jsonl.gz")))
        full[0] = False

        def archived() -> int:
            return sum(1 for p in tmp_path.rglob("*.jsonl.gz") for _ in _lines(p))

        await wait_for(lambda: archived() == 20, 60, "the changes archived once space is back")

        def checkpointed() -> bool:
            found = checkpoints(running.application)
            return bool(found) and all(c.isdigit() for c in found)

        await wait_for(checkpointed, 60, "a checkpoint after the write")


def _lines(path: Path) -> list[bytes]:
    import gzip

    return gzip.decompress(path.read_bytes()).splitlines()


@pytest.mark.integration
async def test_a_quiet_shard_still_closes_its_file_on_time(
    local_stack: Any, tmp_path: Path
) -> None:
    """Three changes, far below roll_records: the file comes after roll_seconds anyway."""
    table = unique("quiet")
    create_stream_table(local_stack.endpoint_url, table)
    sink = sink_from_url(f"file://{tmp_path}?format=parquet&roll_records=100000&roll_seconds=1")
    client = dynamodb(local_stack.endpoint_url)
    async with RunningSinks(local_stack, table, [sink]):
        for i in range(3):
            client.put_item(TableName=table, Item={"pk": {"S": f"q{i}"}})

        def rows() -> int:
            import pyarrow.parquet as pq

            return sum(pq.ParquetFile(p).metadata.num_rows for p in tmp_path.rglob("*.parquet"))

        await wait_for(lambda: rows() == 3, 60, "the quiet shard's file")
