"""Helpers for the MultiLang compatibility tests: installed clients, the stream, logs."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from shardline.multilang.daemon import load_settings, run_daemon_async
from tests.integration.support import lease_items

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KCLPY_VERSION = "3.2.0"
KCLPY_DIR = HERE / ".deps" / f"amazon_kclpy-{KCLPY_VERSION}"
NODE_MODULES = HERE / "node" / "node_modules"
NOT_INSTALLED = "the real MultiLang clients are not installed: run tests/compat/install.sh"


def require_kclpy() -> Path:
    if not (KCLPY_DIR / "samples" / "sample_kclpy_app.py").is_file():
        pytest.skip(NOT_INSTALLED)
    return KCLPY_DIR


def require_node() -> Path:
    if not (NODE_MODULES / "aws-kcl" / "package.json").is_file():
        pytest.skip(NOT_INSTALLED)
    return NODE_MODULES


class ChildOutput(logging.Handler):
    """Collects what the children write to stderr, per shard, as one text each."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.text: dict[str, str] = defaultdict(str)

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2:
            self.text[str(args[0])] += str(args[1]) + "\n"

    def __enter__(self) -> ChildOutput:
        logger = logging.getLogger("shardline.multilang.stderr")
        logger.addHandler(self)
        logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("shardline.multilang.stderr").removeHandler(self)

    def matches(self, pattern: str) -> dict[str, list[tuple[str, ...]]]:
        """Per shard, the groups of every match of ``pattern`` in its output."""
        compiled = re.compile(pattern)
        return {
            shard: [match.groups() for match in compiled.finditer(text)]
            for shard, text in self.text.items()
        }


def stream_records(endpoint_url: str, table: str) -> tuple[dict[str, list[str]], set[str]]:
    """Every sequence number per shard, read straight from the stream; and the closed shards."""
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint_url, region_name="us-east-1")
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    result: dict[str, list[str]] = {}
    closed = set()
    for shard in shards:
        shard_id = shard["ShardId"]
        if "EndingSequenceNumber" in shard["SequenceNumberRange"]:
            closed.add(shard_id)
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        sequence_numbers: list[str] = []
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            sequence_numbers += [r["dynamodb"]["SequenceNumber"] for r in page["Records"]]
            iterator = page.get("NextShardIterator") if page["Records"] else None
        result[shard_id] = sequence_numbers
    return result, closed


def leases(endpoint_url: str, lease_table: str) -> dict[str, str]:
    """Checkpoint per lease key."""
    return {
        item["leaseKey"]["S"]: item.get("checkpoint", {}).get("S", "")
        for item in lease_items(endpoint_url, lease_table)
    }


def write_properties(path: Path, endpoint_url: str, table: str, app: str, command: str) -> Path:
    path.write_text(
        "# written by tests/compat\n"
        f"executableName = {command}\n"
        f"applicationName = {app}\n"
        f"streamName = {table}\n"
        "initialPositionInStream = TRIM_HORIZON\n"
        "regionName = us-east-1\n"
        "AwsCredentialsProvider = DefaultCredentialsProvider\n"
        f"kinesisEndpoint = {endpoint_url}\n"
        f"dynamoDBEndpoint: {endpoint_url}\n"
        "failoverTimeMillis = 3000\n"
        "idleTimeBetweenReadsInMillis = 100\n"
        "parentShardPollIntervalMillis = 200\n"
        "cleanupLeasesUponShardCompletion = false\n"
        "shutdownGraceMillis = 3000\n"
        "timeoutInSeconds = 60\n"
        "processingLanguage = python/3\n"
    )
    return path


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Daemon:
    """The MultiLang daemon, in-process, on the test's event loop."""

    def __init__(self, properties: Path) -> None:
        self.settings = load_settings(properties)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(run_daemon_async(self.settings, self.stop))

    async def shutdown(self, timeout: float = 30) -> None:
        assert self.task is not None
        self.stop.set()
        await asyncio.wait_for(self.task, timeout)


def flatten(per_shard: dict[str, list[Any]]) -> list[Any]:
    return [item for items in per_shard.values() for item in items]
