"""Two `shardline run --sink file:///... --sink delta+file:///...` workers, rollovers, SIGKILLs.

Every change of the stream is in the archive exactly once (counted by shard id and
sequence number), no temporary or partial file is ever visible to a reader (a reader
thread opens every visible file while the workers run), and each shard's files hold its
changes in sequence order with ranges that neither overlap nor leave a change out. The same
workers also write a Delta changelog: every change in exactly one commit.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from shardline.sinks.archive_layout import parse_file_name
from tests.integration.support import create_stream_table, dynamodb, unique, wait_until

pytestmark = pytest.mark.integration

KEYS = 40
ROOT = Path(__file__).resolve().parents[2]


def start_worker(
    stack: Any, table: str, app: str, worker: str, sink: str, log: Path, crash: str = ""
) -> Any:
    command = [sys.executable, "-m", "tests.sinks.archive_fault", "run", "--table", table,
               "--application", app, "--endpoint-url", stack.endpoint_url,
               "--worker-id", worker, "--failover-time", "2", "--idle-time", "0.1",
               "--shard-sync-interval", "1"]  # fmt: skip
    for url in sink.split(" "):
        command += ["--sink", url]
    env = {**os.environ, "ARCHIVE_CRASH": crash, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=env, stdout=out, stderr=out, cwd=ROOT)


def churn(stack: Any, table: str, rng: random.Random, steps: int) -> None:
    client = dynamodb(stack.endpoint_url)
    for step in range(steps):
        key = f"k{rng.randrange(KEYS):03d}"
        if rng.random() < 0.15:
            client.delete_item(TableName=table, Key={"pk": {"S": key}})
        else:
            item = {"pk": {"S": key}, "v": {"N": str(step)}, "s": {"S": "x" * 40}}
            client.put_item(TableName=table, Item=item)


def stream_changes(stack: Any, table: str) -> set[tuple[str, int]]:
    """Every (shard, sequence number) the table's stream holds, read with boto3."""
    arn = dynamodb(stack.endpoint_url).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = boto3.client(
        "dynamodbstreams", endpoint_url=stack.endpoint_url, region_name="us-east-1"
    )
    found: set[tuple[str, int]] = set()
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        ).get("ShardIterator")
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            found |= {
                (shard["ShardId"], int(r["dynamodb"]["SequenceNumber"])) for r in page["Records"]
            }
            if not page["Records"] and "EndingSequenceNumber" not in shard["SequenceNumberRange"]:
                break
            iterator = page.get("NextShardIterator")
    return found


class Reader(threading.Thread):
    """Opens every visible file again and again; a partial or temporary one is a failure."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.opened = 0

    def run(self) -> None:
        while not self.stop.is_set():
            for path in self.root.rglob("*.parquet"):
                try:
                    pq.read_table(path)
                    self.opened += 1
                except FileNotFoundError:
                    continue
                except Exception as exc:
                    self.problems.append(f"{path}: {exc}")
                if parse_file_name(path.name) is None:
                    self.problems.append(f"{path}: not an archive name")
            time.sleep(0.05)


def archived(root: Path) -> list[tuple[str, int, int, list[int]]]:
    files = []
    for path in root.rglob("*.parquet"):
        parsed = parse_file_name(path.name)
        assert parsed is not None, path
        table = pq.read_table(path, columns=["sequence_number", "shard_id"])
        assert set(table.column("shard_id").to_pylist()) == {parsed[0]}
        seqs = [int(s) for s in table.column("sequence_number").to_pylist()]
        files.append((parsed[0], parsed[1], parsed[2], seqs))
    return files


def delta_changes(lake: Path) -> set[tuple[str, int]]:
    try:
        table = DeltaTable(str(lake)).to_pyarrow_table(columns=["shard_id", "sequence_number"])
    except Exception:
        return set()
    shards = table.column("shard_id").to_pylist()
    seqs = table.column("sequence_number").to_pylist()
    return {(s, int(q)) for s, q in zip(shards, seqs, strict=True)}


def archived_changes(root: Path) -> list[tuple[str, int]]:
    return [(shard, s) for shard, _, _, seqs in archived(root) for s in seqs]


@pytest.mark.parametrize(("seed", "crash"), [(11, "after-publish:2"), (23, "before-rename:2")])
def test_exactly_once_through_kills_and_rollovers(
    local_stack: Any, tmp_path: Path, seed: int, crash: str
) -> None:
    """Besides SIGKILLs at random moments, the first workers die at a point of a file's write."""
    rng = random.Random(seed)
    table = unique("archived")
    create_stream_table(local_stack.endpoint_url, table)
    root = tmp_path / "archive"
    roll = f"roll_records={rng.choice([7, 20, 50])}&roll_seconds=1"
    lake = tmp_path / "lake"
    sink = f"file://{root}?format=parquet&{roll} delta+file://{lake}?{roll}"
    app = unique("app")
    crashed: list[str] = []
    reader = Reader(root)
    reader.start()
    workers = {
        name: start_worker(local_stack, table, app, name, sink, tmp_path / f"{name}.log", crash)
        for name in ("w1", "w2")
    }
    try:
        for round_ in range(2):
            churn(local_stack, table, rng, rng.randrange(80, 160))
            if rng.random() < 0.7:
                local_stack.rollover(table)
            time.sleep(rng.uniform(0.0, 1.5))
            victim = rng.choice(sorted(workers))
            workers[victim].send_signal(signal.SIGKILL)
            for name, process in list(workers.items()):
                if name == victim or process.poll() is not None:  # killed, or crashed itself
                    if process.wait(timeout=10) == 9:  # os._exit(9): the injected crash
                        crashed.append(name)
                    log = tmp_path / f"{name}-{round_}.log"
                    workers[f"{name}-{round_}"] = start_worker(
                        local_stack, table, app, f"{name}-{round_}", sink, log
                    )
                    del workers[name]
        churn(local_stack, table, rng, 50)
        expected = stream_changes(local_stack, table)
        wait_until(lambda: set(archived_changes(root)) >= expected, 120, "every change archived")
        wait_until(lambda: delta_changes(lake) >= expected, 60, "every change in the Delta table")
    finally:
        crashed += [name for name, process in workers.items() if process.poll() == 9]
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        reader.stop.set()
        reader.join(timeout=10)
    changes = archived_changes(root)
    assert len(changes) == len(set(changes)), "a change is in two files"
    assert set(changes) == expected
    table = DeltaTable(str(lake)).to_pyarrow_table(columns=["shard_id", "sequence_number"])
    committed = [
        (shard, int(seq))
        for shard, seq in zip(
            table.column("shard_id").to_pylist(),
            table.column("sequence_number").to_pylist(),
            strict=True,
        )
    ]
    assert len(committed) == len(set(committed)), "a change is in two Delta commits"
    assert set(committed) == expected
    assert reader.problems == [] and reader.opened > 0
    if not crashed:
        return  # both were SIGKILLed before their file number N (rare): nothing more to see
    if crash.startswith("before-rename"):  # the crashed write's half file stayed hidden
        assert [p for p in root.rglob(".*crashed.tmp") if p.is_file()]
    else:  # the next owner found the file written after the last checkpoint and skipped it
        logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
        assert "are archived already; skipped" in logs
    by_shard: dict[str, list[tuple[int, int, list[int]]]] = defaultdict(list)
    for shard, first, last, seqs in archived(root):
        assert seqs == sorted(seqs) and seqs[0] == first and seqs[-1] == last
        by_shard[shard].append((first, last, seqs))
    for files in by_shard.values():
        files.sort()
        assert all(a[1] < b[0] for a, b in itertools.pairwise(files))
