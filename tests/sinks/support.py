"""Helpers for sink tests: run a Consumer with sinks on this loop; compare tables."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import psycopg

from shardline.delivery import DeliveryConfig
from shardline.runner import Consumer
from shardline.sinks.base import Sink
from tests.integration.support import dynamodb, unique


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class RunningSinks:
    """A Consumer with sinks (and an optional handler) running as a task on this loop."""

    def __init__(
        self,
        stack: Any,
        table: str,
        sinks: Sequence[Sink],
        *,
        handler: Any = None,
        delivery: DeliveryConfig | None = None,
        application: str | None = None,
        worker_id: str | None = None,
        snapshot_segments: int = 4,
    ) -> None:
        self.application = application or unique("app")
        self.consumer = Consumer(
            handler,
            sinks=sinks,
            delivery=delivery,
            application=self.application,
            table=table,
            endpoint_url=stack.endpoint_url,
            region="us-east-1",
            failover_time=3.0,
            idle_time=0.05,
            worker_id=worker_id or unique("worker"),
            retry_base_delay=0.05,
            retry_max_delay=0.5,
            snapshot_segments=snapshot_segments,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RunningSinks:
        self.task = asyncio.create_task(self.consumer.run_async(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 60)


def source_items(endpoint_url: str, table: str) -> dict[str, dict[str, Any]]:
    """Every item of a table keyed by ``pk``, as plain values (numbers as Decimal)."""
    client = dynamodb(endpoint_url)
    items: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            plain = {k: _plain(v) for k, v in item.items()}
            items[str(plain["pk"])] = plain
    return items


def _plain(av: dict[str, Any]) -> Any:
    ((tag, value),) = av.items()
    if tag == "N":
        return Decimal(value)
    if tag == "M":
        return {k: _plain(v) for k, v in value.items()}
    if tag == "L":
        return [_plain(v) for v in value]
    if tag == "B":
        return base64.b64encode(value).decode() if isinstance(value, bytes) else value
    if tag == "SS":
        return sorted(value)
    if tag == "NS":
        return sorted(Decimal(v) for v in value)
    if tag == "NULL":
        return None
    return value


def postgres_items(dsn: str, table: str) -> dict[str, dict[str, Any]]:
    """The state table's ``_item`` documents keyed by ``pk`` (numbers as Decimal)."""
    with psycopg.connect(dsn) as conn:
        try:
            rows = conn.execute(f'SELECT pk, _item::text FROM "{table}"').fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    return {pk: json.loads(doc, parse_float=Decimal, parse_int=Decimal) for pk, doc in rows}
