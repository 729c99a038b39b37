"""Several `shardline run` processes sharing one lease table, killed and restarted."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import (
    VersionedWriter,
    WorkerProcess,
    create_stream_table,
    lease_items,
    owners,
    read_records,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration


def processed(record_file: str) -> set[tuple[str, int]]:
    return {(key, version) for _, _, _, key, version in read_records(record_file)}


def split_into(stack: Any, table: str, open_shards: int) -> None:
    for _ in range(open_shards - 1):
        stack.split(table)


def test_sigkill_then_restart_resumes_from_checkpoint(local_stack: Any, tmp_path: Path) -> None:
    endpoint = local_stack.endpoint_url
    table, app = unique("kill"), unique("app")
    create_stream_table(endpoint, table)
    writer = VersionedWriter(endpoint, table, keys=10)
    record_file = str(tmp_path / "records.txt")
    for _ in range(3):
        writer.write_round()
    first = WorkerProcess(endpoint, table, app, "w1", record_file)
    try:
        wait_until(lambda: processed(record_file) >= writer.expected(), 30, "first pass")
        first.signal(signal.SIGKILL)
        first.wait()
        checkpoints = {
            item["leaseKey"]["S"]: item["checkpoint"]["S"] for item in lease_items(endpoint, app)
        }
        rows_before = len(read_records(record_file))
        local_stack.rollover(table)
        for _ in range(2):
            writer.write_round()
    finally:
        first.stop()
    second = WorkerProcess(endpoint, table, app, "w1", record_file)
    try:
        wait_until(lambda: processed(record_file) >= writer.expected(), 30, "resume")
    finally:
        second.signal(signal.SIGTERM)
        second.wait()
    replayed = read_records(record_file)[rows_before:]
    for _, shard, sequence, _, _ in replayed:
        checkpoint = checkpoints.get(shard, "TRIM_HORIZON")
        if checkpoint.isdigit():
            assert int(sequence) > int(checkpoint), "a record at or below the checkpoint came back"
        assert checkpoint != "SHARD_END", f"finished shard {shard} was read again"


def test_workers_share_evenly_and_sigterm_hands_over_fast(local_stack: Any, tmp_path: Path) -> None:
    endpoint = local_stack.endpoint_url
    table, app = unique("share"), unique("app")
    create_stream_table(endpoint, table)
    split_into(local_stack, table, 6)
    writer = VersionedWriter(endpoint, table, keys=30)
    writer.write_round()
    record_file = str(tmp_path / "records.txt")
    workers = [WorkerProcess(endpoint, table, app, f"w{i}", record_file) for i in (1, 2)]
    try:

        def balanced(names: set[str], per_worker: int) -> bool:
            counts = Counter(owners(endpoint, app).values())
            return set(counts) == names and all(c == per_worker for c in counts.values())

        wait_until(lambda: balanced({"w1", "w2"}, 3), 40, "two workers holding 3 leases each")
        workers.append(WorkerProcess(endpoint, table, app, "w3", record_file))
        wait_until(lambda: balanced({"w1", "w2", "w3"}, 2), 40, "three workers holding 2 each")
        writer.write_round()
        wait_until(lambda: processed(record_file) >= writer.expected(), 30, "all records")

        # SIGTERM: the leases are released, so the others take them long before the
        # 10 s failover time (these workers run with failover 3 s; see the next test).
        leaving = workers.pop(0)
        leaving.signal(signal.SIGTERM)
        assert leaving.wait(timeout=30) == 0
        wait_until(lambda: balanced({"w2", "w3"}, 3), 40, "w2 and w3 taking w1's leases")
    finally:
        for worker in workers:
            worker.stop()


def test_sigterm_releases_leases_before_failover_time(local_stack: Any, tmp_path: Path) -> None:
    endpoint = local_stack.endpoint_url
    table, app = unique("handoff"), unique("app")
    create_stream_table(endpoint, table)
    split_into(local_stack, table, 4)
    writer = VersionedWriter(endpoint, table, keys=20)
    writer.write_round()
    record_file = str(tmp_path / "records.txt")
    failover = 30.0
    workers = [
        WorkerProcess(endpoint, table, app, name, record_file, failover_time=failover)
        for name in ("a", "b")
    ]
    try:
        wait_until(
            lambda: set(owners(endpoint, app).values()) == {"a", "b"}, 60, "both owning leases"
        )
        workers[0].signal(signal.SIGTERM)
        started = time.monotonic()
        assert workers[0].wait(timeout=30) == 0
        wait_until(lambda: set(owners(endpoint, app).values()) == {"b"}, failover, "handover")
        assert time.monotonic() - started < failover
        writer.write_round()
        wait_until(lambda: processed(record_file) >= writer.expected(), 30, "all records")
    finally:
        for worker in workers:
            worker.stop()


def test_second_signal_exits_at_once(local_stack: Any, tmp_path: Path) -> None:
    endpoint = local_stack.endpoint_url
    table, app = unique("twice"), unique("app")
    create_stream_table(endpoint, table)
    VersionedWriter(endpoint, table, keys=3).write_round()
    record_file = str(tmp_path / "records.txt")
    worker = WorkerProcess(endpoint, table, app, "slow", record_file, env={"RECORDER_DELAY": "60"})
    try:
        wait_until(lambda: bool(read_records(record_file)), 30, "the slow batch to start")
        worker.signal(signal.SIGTERM)
        time.sleep(1.0)
        assert worker.process.poll() is None, "the first signal waits for the in-flight batch"
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        worker.stop()


def test_sigterm_while_starting_exits_cleanly(local_stack: Any, tmp_path: Path) -> None:
    endpoint = local_stack.endpoint_url
    table, app = unique("early"), unique("app")
    create_stream_table(endpoint, table)
    worker = WorkerProcess(endpoint, table, app, "early", str(tmp_path / "records.txt"))
    try:
        time.sleep(0.4)  # after the CLI started, most likely before the event loop runs
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, worker.log_text()
    finally:
        worker.stop()
