"""A change the receiver refuses for good (400) takes the delivery path's failure route:
retried, bisected, then sent to ``on_failure`` with the record; the key's later changes
follow it, in order, and nothing else is held up."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shardline.delivery import DeliveryConfig
from shardline.sinks.registry import sink_from_url
from shardline.sinks.webhook import WebhookSink
from tests.integration.support import create_stream_table, dynamodb, unique
from tests.sinks.support import RunningSinks, wait_for
from tests.sinks.webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    def refuse_bad(request: Any) -> int | None:
        return 400 if (request.json().get("new") or {}).get("bad") else None

    server = await Receiver(status_for=refuse_bad).start()
    yield server
    await server.stop()


async def test_refused_change_goes_to_on_failure_and_order_holds(
    local_stack: Any, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK", SECRET)
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    client = dynamodb(local_stack.endpoint_url)
    writes = [("a", 1, False), ("b", 1, False), ("a", 2, True), ("b", 2, False), ("a", 3, False)]
    for key, version, bad in writes:
        item = {"pk": {"S": key}, "v": {"N": str(version)}, "bad": {"BOOL": bad}}
        client.put_item(TableName=table, Item=item)
    sink = sink_from_url(f"{receiver.url}?secret_env=HOOK")
    assert isinstance(sink, WebhookSink)
    sink.policy = type(sink.policy)(retry_on=sink.policy.retry_on, base_delay=0.01)
    failed_dir = tmp_path / "failed"
    delivery = DeliveryConfig(
        batch_size=10, maximum_retry_attempts=1, bisect_batch_on_function_error=True,
        on_failure=f"file://{failed_dir}",
    )  # fmt: skip

    def accepted() -> list[tuple[str, int]]:
        firsts = [r.json() for r in receiver.first_seen() if not r.json()["new"]["bad"]]
        return [(m["key"]["pk"], int(m["new"]["v"])) for m in firsts]

    async with RunningSinks(local_stack, table, [sink], delivery=delivery):
        await wait_for(lambda: len(accepted()) == 4, 60, "the four good changes")
        await wait_for(lambda: any(failed_dir.rglob("*.json")), 60, "the failure document")
    assert [c for c in accepted() if c[0] == "a"] == [("a", 1), ("a", 3)]
    assert [c for c in accepted() if c[0] == "b"] == [("b", 1), ("b", 2)]
    assert all(r.verified for r in receiver.requests)
    refused = [r for r in receiver.requests if r.json()["new"]["bad"]]
    a3_first = next(r.at for r in receiver.requests if r.json()["new"]["v"] == 3)
    assert refused and all(r.at < a3_first for r in refused)  # a:3 only after a:2 was given up
    documents = [json.loads(p.read_text()) for p in failed_dir.rglob("*.json")]
    records = [r for d in documents for r in d.get("records", d.get("Records", []))]
    assert any(r["dynamodb"]["NewImage"]["bad"] == {"BOOL": True} for r in records)
