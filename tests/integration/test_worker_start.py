"""A worker's start-up against a lease table that pushes back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shardline.aws.settings import AwsSettings
from shardline.config import ConsumerConfig
from shardline.processor import processor_factory
from shardline.worker import Worker
from tests.integration.support import create_stream_table, unique

pytestmark = pytest.mark.integration


async def test_a_throttled_first_shard_sync_is_retried_not_fatal(local_stack: Any) -> None:
    """More throttles on the lease table's PutItem than one call retries: the worker waits."""
    table, app = unique("firstsync"), unique("app")
    create_stream_table(local_stack.endpoint_url, table)
    config = ConsumerConfig(
        application=app, table=table, failover_time=3.0, idle_time=0.05,
        aws=AwsSettings(endpoint_url=local_stack.endpoint_url, region="us-east-1"),
    )  # fmt: skip
    worker = Worker(config, processor_factory(lambda records: None))
    rule = local_stack.faults.throttle("PutItem", count=30, table=app)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.started.wait(), 60)
        assert not task.done()
    finally:
        local_stack.faults.remove(rule)
        stop.set()
        await asyncio.wait_for(task, 30)
