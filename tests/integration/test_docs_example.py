"""The example of docs/local-stack.md, verbatim: a user's processor tested on LocalStack."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest

import shardline
from shardline.local import LocalStack

pytestmark = pytest.mark.integration


# The processor under test. In your project it lives in your package and is imported.
def make_handler(seen: dict[str, Any]) -> Any:
    def handle(records: list[shardline.StreamRecord]) -> None:
        for record in records:
            key = record.keys["pk"]
            if record.event_name == "REMOVE":
                seen.pop(key, None)
            else:  # INSERT or MODIFY; the view type NEW_AND_OLD_IMAGES carries new_image
                seen[key] = (record.new_image or {}).get("total")

    return handle


async def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true after {timeout}s")


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    # The local stack accepts any credentials, but botocore needs some to sign with.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with LocalStack(port=0) as running:  # port 0: a free port, chosen by the OS
        yield running


@pytest.mark.asyncio
async def test_handler_sees_every_order(stack: LocalStack) -> None:
    table = f"orders-{uuid.uuid4().hex[:8]}"  # moto state is process-wide: unique names
    ddb = boto3.client("dynamodb", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for i in range(5):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"order-{i}"}, "total": {"N": f"{i}.50"}})
    ddb.delete_item(TableName=table, Key={"pk": {"S": "order-0"}})

    seen: dict[str, Any] = {}
    stop = asyncio.Event()
    consumer = shardline.Consumer(
        make_handler(seen),
        table=table,
        application=f"{table}-app",
        endpoint_url=stack.endpoint_url,
        region="us-east-1",
        idle_time=0.05,
    )
    task = asyncio.create_task(consumer.run_async(stop))
    try:
        await wait_until(lambda: set(seen) == {"order-1", "order-2", "order-3", "order-4"})
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    assert seen["order-4"] == Decimal("4.50")  # N decodes to Decimal, exactly
