"""Webhooks through an HTTP proxy from the standard environment (proxy.py as the proxy)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shardline.sinks.base import KeyAttribute, SinkContext
from shardline.sinks.registry import sink_from_url
from tests.integration.test_proxy import PROXY_VARIABLES, Proxy, start_proxy
from tests.sinks.notify_support import ARN, change
from tests.sinks.webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.integration

CONTEXT = SinkContext("Orders", ARN, (KeyAttribute("pk", "S"),), "app")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    yield from start_proxy(Path(tmp_path_factory.mktemp("webhook-proxy")))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


async def test_signed_requests_go_through_the_proxy(
    monkeypatch: pytest.MonkeyPatch, proxy: Proxy, receiver: Receiver
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url())
    monkeypatch.setenv("HOOK", SECRET)
    sink = sink_from_url(f"{receiver.url}?secret_env=HOOK")
    assert await sink.check(CONTEXT) == []
    await sink.start(CONTEXT)
    records = [change("a", 1, new={}), change("b", 2, new={}), change("a", 3, new={})]
    await sink.open_shard("s").write(records)
    await sink.close()
    assert [r.webhook_id for r in receiver.requests if r.webhook_id.startswith("ev-a")] == [
        "ev-a-1",
        "ev-a-3",
    ]
    assert len(receiver.requests) == 3 and all(r.verified for r in receiver.requests)
    assert proxy.carried(receiver.url.split("://", 1)[1].split("/", 1)[0])
