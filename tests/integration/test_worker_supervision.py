"""A worker's background loops are supervised: restarted when they die, and a loop that
keeps dying stops the worker with an error instead of vanishing silently."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shardline.aws.settings import AwsSettings
from shardline.config import ConsumerConfig
from shardline.errors import WorkerFailedError
from shardline.leases.coordinator import LeaseCoordinator
from shardline.processor import processor_factory
from shardline.shard_sync import ShardSyncer
from shardline.supervisor import Supervisor
from shardline.worker import Worker
from tests.integration.support import create_stream_table, unique

pytestmark = pytest.mark.integration


def worker_for(local_stack: Any, **settings: Any) -> Worker:
    table, app = unique("supervised"), unique("app")
    create_stream_table(local_stack.endpoint_url, table)
    config = ConsumerConfig(
        application=app,
        table=table,
        failover_time=3.0,
        idle_time=0.05,
        aws=AwsSettings(endpoint_url=local_stack.endpoint_url, region="us-east-1"),
        **settings,
    )
    return Worker(config, processor_factory(lambda records: None))


async def test_a_shard_sync_loop_that_keeps_dying_stops_the_worker_with_an_error(
    local_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = worker_for(local_stack, shard_sync_interval=1.0)
    # a bug in the periodic sync (the first sync, at start-up, works)
    calls = 0
    real_sync = ShardSyncer.sync

    async def sync_then_break(self: ShardSyncer) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("a bug in the shard sync")
        await real_sync(self)

    monkeypatch.setattr(ShardSyncer, "sync", sync_then_break)
    worker._supervisor = Supervisor(worker._loop_failed, max_failures=2)
    stop = asyncio.Event()
    with pytest.raises(WorkerFailedError, match="shard sync loop kept failing"):
        await asyncio.wait_for(worker.run(stop), 60)
    assert not stop.is_set()  # the caller's event: a signal handler may count it
    assert calls == 3  # the first sync, then the loop died twice


async def test_a_renewal_loop_that_dies_once_is_restarted_and_leases_stay_held(
    local_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = worker_for(local_stack)
    renewals = 0
    real_renew = LeaseCoordinator.renew_all

    async def renew_once_broken(self: LeaseCoordinator) -> None:
        nonlocal renewals
        renewals += 1
        if renewals == 1:
            raise KeyError("a bug in the renewal round")
        await real_renew(self)

    monkeypatch.setattr(LeaseCoordinator, "renew_all", renew_once_broken)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.started.wait(), 60)
        for _ in range(200):
            if renewals >= 4:
                break
            await asyncio.sleep(0.1)
        assert renewals >= 4
        assert worker.health()["healthy"] is True
        assert worker.failure is None
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
