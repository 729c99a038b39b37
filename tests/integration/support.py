"""Helpers for integration tests: tables with streams, versioned writes, waiting."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import boto3

from shardline.local.settings import LOCAL

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:6]}"


def dynamodb(endpoint_url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=LOCAL.region)


def create_stream_table(endpoint_url: str, name: str, view: str = "NEW_AND_OLD_IMAGES") -> str:
    """Create a table keyed by `pk` with a stream; return the stream ARN."""
    answer = dynamodb(endpoint_url).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
    )
    return str(answer["TableDescription"]["LatestStreamArn"])


class VersionedWriter:
    """Writes `pk=key-N, version=V` items and remembers every version written."""

    def __init__(self, endpoint_url: str, table: str, keys: int) -> None:
        self.client = dynamodb(endpoint_url)
        self.table = table
        self.keys = [f"key-{i:03d}" for i in range(keys)]
        self.versions: dict[str, int] = defaultdict(int)

    def write_round(self) -> None:
        """One new version of every key."""
        for key in self.keys:
            self.write(key)

    def write(self, key: str) -> None:
        self.versions[key] += 1
        self.client.put_item(
            TableName=self.table,
            Item={"pk": {"S": key}, "version": {"N": str(self.versions[key])}},
        )

    def expected(self) -> set[tuple[str, int]]:
        return {(k, v) for k, n in self.versions.items() for v in range(1, n + 1)}


def seen_versions(events: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
    return set(events)


def assert_per_key_order(events: list[tuple[str, int]]) -> None:
    """Each key's versions arrive in increasing order (a single run, no failures)."""
    last: dict[str, int] = {}
    for key, version in events:
        assert version > last.get(key, 0), f"{key}: version {version} after {last.get(key)}"
        last[key] = version


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def lease_items(endpoint_url: str, table: str) -> list[dict[str, Any]]:
    """Every item of the lease table; none while the table does not exist yet."""
    client = dynamodb(endpoint_url)
    try:
        items: list[dict[str, Any]] = client.scan(TableName=table, ConsistentRead=True)["Items"]
    except client.exceptions.ResourceNotFoundException:
        return []
    return items


class WorkerProcess:
    """`shardline run` in a subprocess, recording what it processes to a shared file."""

    def __init__(
        self,
        endpoint_url: str,
        table: str,
        application: str,
        worker_id: str,
        record_file: str,
        *extra: str,
        failover_time: float = 3.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.log_path = f"{record_file}.{worker_id}.log"
        command = [
            sys.executable, "-m", "shardline.cli", "--log-level", "INFO", "run",
            "tests.integration.recorder_app:handle", "--table", table,
            "--application", application, "--endpoint-url", endpoint_url,
            "--worker-id", worker_id, "--failover-time", str(failover_time),
            "--idle-time", "0.1", *extra,
        ]  # fmt: skip
        env = {
            **os.environ,
            "RECORDER_FILE": record_file,
            "RECORDER_WORKER": worker_id,
            **(env or {}),
        }
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=self._log)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


def read_records(record_file: str) -> list[tuple[str, str, str, str, int]]:
    """(worker, shard, sequence, key, version) per processed record, in file order."""
    rows = []
    try:
        with open(record_file, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 5:
                    rows.append((parts[0], parts[1], parts[2], parts[3], int(parts[4])))
    except FileNotFoundError:
        pass
    return rows


def owners(endpoint_url: str, lease_table: str) -> dict[str, str | None]:
    """Owner of every unfinished lease."""
    result: dict[str, str | None] = {}
    for item in lease_items(endpoint_url, lease_table):
        if item.get("checkpoint", {}).get("S") != "SHARD_END":
            result[item["leaseKey"]["S"]] = item.get("leaseOwner", {}).get("S")
    return result
