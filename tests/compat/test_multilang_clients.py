"""The real MultiLang clients, unmodified, on DynamoDB Streams through `shardline multilang`.

amazon-kclpy's own samples/sample_kclpy_app.py, a v2-style kclpy processor and a Node
aws-kcl consumer written from its README. Each reads a table whose shards split and
roll over (before and while the daemon runs) and must see every record, advance the
checkpoints in the lease table and record SHARD_END for every ended shard.
Run tests/compat/install.sh first (CI does).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.compat.support import (
    ROOT,
    ChildOutput,
    Daemon,
    flatten,
    leases,
    require_kclpy,
    require_node,
    stream_records,
    wait_for,
    write_properties,
)
from tests.integration.support import VersionedWriter, create_stream_table, unique

pytestmark = pytest.mark.integration

RECORD_LINE = r"record (\d+) (\w+) (\S+) (\S+) (\d+)"


async def consume_with(
    stack: Any, tmp_path: Path, command: str, seen: Any
) -> tuple[VersionedWriter, dict[str, list[str]], ChildOutput, str]:
    """Write three generations, start the daemon, roll over live, wait for every record.

    ``seen(output)`` returns the sequence numbers the children reported, per shard.
    """
    table, app = unique("ml"), unique("ml-app")
    create_stream_table(stack.endpoint_url, table)
    writer = VersionedWriter(stack.endpoint_url, table, keys=8)
    writer.write_round()
    stack.split(table)
    writer.write_round()
    stack.rollover(table)
    writer.write_round()
    path = tmp_path / "app.properties"
    properties = write_properties(path, stack.endpoint_url, table, app, command)
    with ChildOutput() as output:
        daemon = Daemon(properties)
        daemon.start()

        def before_seen() -> bool:
            written = flatten(stream_records(stack.endpoint_url, table)[0])
            return set(flatten(seen(output))) >= set(written)

        await wait_for(before_seen, 60, "the first three generations")
        await asyncio.to_thread(stack.rollover, table)  # live: shards end under the daemon
        await asyncio.to_thread(writer.write_round)
        expected: dict[str, list[str]] = {}

        def everything_seen() -> bool:
            expected.update(stream_records(stack.endpoint_url, table)[0])
            return set(flatten(seen(output))) >= set(flatten(expected))

        await wait_for(everything_seen, 60, "the fourth generation")
        _, closed = stream_records(stack.endpoint_url, table)
        await wait_for(
            lambda: all(leases(stack.endpoint_url, app).get(s) == "SHARD_END" for s in closed),
            30,
            "SHARD_END for every ended shard",
        )
        await daemon.shutdown()
    assert_checkpoints(stack.endpoint_url, app, expected, closed)
    return writer, expected, output, app


def assert_checkpoints(
    endpoint_url: str, app: str, records: dict[str, list[str]], closed: set[str]
) -> None:
    checkpoints = leases(endpoint_url, app)
    assert set(checkpoints) == set(records), "one lease per shard"
    for shard, sequence_numbers in records.items():
        checkpoint = checkpoints[shard]
        if shard in closed:
            assert checkpoint == "SHARD_END", shard
        elif sequence_numbers:
            assert checkpoint.isdigit() and int(checkpoint) >= int(sequence_numbers[0]), shard


def reported(output: ChildOutput) -> dict[str, list[str]]:
    return {shard: [m[0] for m in found] for shard, found in output.matches(RECORD_LINE).items()}


async def test_kclpy_sample_app_unmodified(
    local_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kclpy = require_kclpy()
    monkeypatch.setenv("PYTHONPATH", str(kclpy))
    sample = kclpy / "samples" / "sample_kclpy_app.py"

    def seen(output: ChildOutput) -> dict[str, list[str]]:
        return {
            shard: [groups[0] for groups in found]
            for shard, found in output.matches(r"Sequence Number: (\d+),").items()
        }

    _, expected, output, _ = await consume_with(
        local_stack, tmp_path, f"{sys.executable} {sample}", seen
    )
    for shard, sequence_numbers in expected.items():
        assert set(seen(output).get(shard, [])) >= set(sequence_numbers), shard


async def test_kclpy_v2_processor(
    local_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kclpy = require_kclpy()
    monkeypatch.setenv("PYTHONPATH", str(kclpy))
    app = ROOT / "examples" / "kclpy" / "v2_processor.py"
    writer, _, output, _ = await consume_with(
        local_stack, tmp_path, f"{sys.executable} {app}", reported
    )
    assert_changes(output, writer)


async def test_node_aws_kcl_consumer(
    local_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node_modules = require_node()
    monkeypatch.setenv("NODE_PATH", str(node_modules))
    consumer = ROOT / "examples" / "node" / "consumer.js"
    writer, _, output, _ = await consume_with(local_stack, tmp_path, f"node {consumer}", reported)
    assert_changes(output, writer)


def assert_changes(output: ChildOutput, writer: VersionedWriter) -> None:
    """The decoded data: every (key, version), INSERT/MODIFY, creation time in epoch ms."""
    found = flatten(output.matches(RECORD_LINE))
    assert {(pk, int(version)) for _, _, pk, version, _ in found} == writer.expected()
    assert {name for _, name, _, _, _ in found} <= {"INSERT", "MODIFY"}
    for *_, created in found:
        assert abs(int(created) / 1000 - time.time()) < 3600, created
