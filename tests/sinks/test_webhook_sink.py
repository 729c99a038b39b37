"""The webhook sink against a real aiohttp receiver that verifies Standard Webhooks signatures."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shardline.errors import ConfigError, ShutdownError
from shardline.sinks.base import KeyAttribute, SinkContext, SinkError
from shardline.sinks.registry import sink_from_url
from shardline.sinks.send_policy import RetryPolicy
from shardline.sinks.webhook import WebhookSink
from shardline.sinks.webhook_sign import parse_secrets, signature_header
from tests.sinks.notify_support import ARN, change, parse_cloudevent
from tests.sinks.webhook_receiver import OTHER_SECRET, SECRET, Receiver

CONTEXT = SinkContext("Orders", ARN, (KeyAttribute("pk", "S"),), "app")
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver(key_of=lambda r: r.json()["key"]["pk"]).start()
    yield server
    await server.stop()


async def started(url: str, **options: Any) -> WebhookSink:
    sink = sink_from_url(url, options)
    assert isinstance(sink, WebhookSink)
    sink.policy = RetryPolicy(retry_on=sink.policy.retry_on, base_delay=0.01, max_delay=0.05)
    await sink.start(CONTEXT)
    return sink


def changes(keys: int, per_key: int) -> list[Any]:
    """Interleaved changes: k0 s1, k1 s2, ..., k0 s(keys+1), ..."""
    out, sequence = [], 0
    for _ in range(per_key):
        for k in range(keys):
            sequence += 1
            out.append(change(f"k{k}", sequence, new={"v": {"N": str(sequence)}}))
    return out


async def test_signed_in_order_per_key_and_concurrent(receiver: Receiver) -> None:
    receiver.secrets = (SECRET, OTHER_SECRET)
    receiver.delay = 0.002
    sink = await started(receiver.url, secret=f"{SECRET},{OTHER_SECRET}", concurrency=8)
    records = changes(keys=10, per_key=5)
    await sink.open_shard("s").write(records)
    await sink.close()
    assert len(receiver.requests) == 50 and all(r.verified for r in receiver.requests)
    assert {r.webhook_id for r in receiver.requests} == {r.event_id for r in records}
    assert not receiver.overlaps  # never two requests of one key at once
    for k in range(10):
        seqs = [int(r.json()["sequence_number"]) for r in receiver.requests
                if r.json()["key"]["pk"] == f"k{k}"]  # fmt: skip
        assert seqs == sorted(seqs)
    assert receiver.requests[0].headers["content-type"] == "application/json"


async def test_signature_matches_the_spec() -> None:
    key = parse_secrets(SECRET)[0]
    assert key == base64.b64decode(SECRET.removeprefix("whsec_"))
    value = signature_header([key, key], "msg_1", 1700000000, b'{"a":1}')
    assert value.count("v1,") == 2 and " " in value
    from standardwebhooks import Webhook

    stamp = Webhook(SECRET).sign("msg_1", __import__("datetime").datetime.fromtimestamp(1700000000),
                                 '{"a":1}')  # fmt: skip
    assert value.split(" ")[0] == stamp


@pytest.mark.parametrize("fault", ["500", "503", "429:0", "slow:1.5", "drop", "408"])
async def test_retriable_faults_are_retried_with_the_same_id(
    receiver: Receiver, fault: str
) -> None:
    sink = await started(receiver.url, secret_env="HOOK", timeout=0.5, retries=5)
    record = change("a", 1, new={"v": {"N": "1"}})
    receiver.faults[record.event_id] = [fault, fault]
    await sink.open_shard("s").write([record])
    await sink.close()
    ids = [r.webhook_id for r in receiver.requests]
    assert set(ids) == {record.event_id} and len(ids) >= 3  # more only if the machine stalls
    assert all(r.verified for r in receiver.requests)


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK", SECRET)


async def test_retry_after_is_honoured(receiver: Receiver) -> None:
    sink = await started(receiver.url, secret_env="HOOK")
    record = change("a", 1, new={})
    receiver.faults[record.event_id] = ["429:1"]
    await sink.open_shard("s").write([record])
    await sink.close()
    first, second = receiver.requests
    assert second.at - first.at >= 0.9  # a lower bound: the sink waited as told


async def test_a_long_retry_after_is_pushed_back_to_the_shard(receiver: Receiver) -> None:
    sink = await started(receiver.url, secret_env="HOOK")
    record = change("a", 1, new={})
    receiver.faults[record.event_id] = ["429:120"]
    with pytest.raises(SinkError) as pushed:
        await sink.open_shard("s").write([record])
    await sink.close()
    assert pushed.value.retriable and pushed.value.retry_after == 120.0
    assert len(receiver.requests) == 1


async def test_permanent_4xx_fails_that_key_only(receiver: Receiver) -> None:
    sink = await started(receiver.url, secret_env="HOOK")
    records = [change("a", 1, new={}), change("b", 2, new={}), change("a", 3, new={})]
    receiver.faults[records[0].event_id] = ["400"]
    shard = sink.open_shard("s")
    with pytest.raises(SinkError) as failed:
        await shard.write(records)
    assert not failed.value.retriable and "HTTP 400" in str(failed.value)
    assert [r.webhook_id for r in receiver.requests if r.webhook_id != records[1].event_id] == [
        records[0].event_id
    ]  # a's later change waits behind the refused one
    await shard.write(records)  # the retry sends only what was not delivered, in order
    await sink.close()
    ids = [r.webhook_id for r in receiver.requests]
    assert ids.count(records[1].event_id) == 1
    assert ids[-2:] == [records[0].event_id, records[2].event_id]


async def test_exhausted_retries_push_back(receiver: Receiver) -> None:
    sink = await started(receiver.url, secret_env="HOOK", retries=1)
    receiver.fail_all = "502"
    with pytest.raises(SinkError) as pushed:
        await sink.open_shard("s").write([change("a", 1, new={})])
    assert pushed.value.retriable and "HTTP 502" in str(pushed.value)
    await sink.close()


async def test_retry_on_makes_a_status_permanent(receiver: Receiver) -> None:
    sink = await started(receiver.url, secret_env="HOOK", retry_on="429")
    receiver.fail_all = "503"
    with pytest.raises(SinkError) as failed:
        await sink.open_shard("s").write([change("a", 1, new={})])
    assert not failed.value.retriable and len(receiver.requests) == 1
    await sink.close()


async def test_batches_are_json_arrays_in_key_order(receiver: Receiver) -> None:
    receiver.key_of = None
    sink = await started(receiver.url, secret_env="HOOK", batch=4, concurrency=3)
    records = changes(keys=6, per_key=4)
    await sink.open_shard("s").write(records)
    await sink.close()
    bodies = [r.json() for r in receiver.requests]
    assert all(isinstance(b, list) and 1 <= len(b) <= 4 for b in bodies)
    assert all(r.verified and r.webhook_id.startswith("batch_") for r in receiver.requests)
    got = [m["id"] for b in bodies for m in b]
    assert sorted(got) == sorted(r.event_id for r in records)
    for k in range(6):
        seqs = [int(m["sequence_number"]) for b in bodies for m in b if m["key"]["pk"] == f"k{k}"]
        assert seqs == sorted(seqs)


async def test_cloudevents_binary_mode(receiver: Receiver) -> None:
    receiver.key_of = None
    sink = await started(
        receiver.url, secret_env="HOOK", format="cloudevents", cloudevents_mode="binary"
    )
    await sink.open_shard("s").write([change("a", 5, "INSERT", new={"v": {"N": "1"}})])
    await sink.close()
    (request,) = receiver.requests
    event = parse_cloudevent(request.headers, request.body)
    assert request.verified and event.get_id() == "ev-a-5" and event.get_subject() == "a"
    assert event.get_data()["new"] == {"pk": "a", "v": 1}


async def test_snapshot_rows_are_reads(receiver: Receiver) -> None:
    from shardline.sinks.base import SnapshotRow

    receiver.key_of = None
    sink = await started(receiver.url, secret_env="HOOK", format="debezium")
    rows = [SnapshotRow({"pk": {"S": f"s{i}"}, "v": {"N": str(i)}}, 3, i) for i in range(3)]
    await sink.write_snapshot(rows)
    await sink.close()
    bodies = sorted((r.json() for r in receiver.requests), key=lambda b: b["after"]["v"])
    assert [b["op"] for b in bodies] == ["r", "r", "r"]
    assert [b["source"]["key"] for b in bodies] == [{"pk": f"s{i}"} for i in range(3)]
    assert {r.webhook_id for r in receiver.requests} == {f"snapshot-3-{i}" for i in range(3)}


async def test_headers_and_the_receivers_query_kept(receiver: Receiver) -> None:
    sink = await started(
        receiver.url + "?token=abc", secret_env="HOOK", headers={"Authorization": "Bearer t"}
    )
    assert "token=***" in sink.name and "abc" not in sink.name
    await sink.open_shard("s").write([change("a", 1, new={})])
    await sink.close()
    assert receiver.requests[0].headers["authorization"] == "Bearer t"


async def test_basic_auth_from_the_url(receiver: Receiver) -> None:
    url = receiver.url.replace("http://", "http://user:pa%40ss@")
    sink = await started(url, secret_env="HOOK")
    assert "pa%40ss" not in sink.name and "user:***@" in sink.name
    await sink.open_shard("s").write([change("a", 1, new={})])
    await sink.close()
    expected = "Basic " + base64.b64encode(b"user:pa@ss").decode()
    assert receiver.requests[0].headers["authorization"] == expected


def test_wrong_secret_format_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("hunter2", "whsec_!!notbase64!!", "whsec_c2hvcnQ=", f"{SECRET},oops"):
        monkeypatch.setenv("BAD", bad)
        with pytest.raises(ConfigError) as error:
            sink_from_url("https://example.com/hook?secret_env=BAD")
        text = str(error.value)
        assert "\n" not in text and "https://example.com/hook" in text
        assert bad not in text and "hunter2" not in text


def test_bad_options_name_the_sink() -> None:
    with pytest.raises(ConfigError, match=r"example\.com.*batch"):
        sink_from_url("https://example.com/hook?batch=0")
    with pytest.raises(ConfigError, match="retry_on"):
        sink_from_url("https://example.com/hook?retry_on=999")
    with pytest.raises(ConfigError, match="binary"):
        sink_from_url("https://example.com/hook?cloudevents_mode=binary")


async def test_check_reaches_without_sending(receiver: Receiver) -> None:
    sink = sink_from_url(receiver.url)
    assert await sink.check(CONTEXT) == []
    assert receiver.requests == []
    await receiver.stop()
    problems = await sink_from_url(receiver.url).check(CONTEXT)
    assert len(problems) == 1 and "cannot connect" in problems[0] and receiver.url in problems[0]


async def test_tls_verified_with_a_custom_ca(tls: tuple[ssl.SSLContext, Path]) -> None:
    server_tls, ca = tls
    server = await Receiver(key_of=None).start(tls=server_tls)
    try:
        problems = await sink_from_url(server.url).check(CONTEXT)
        assert len(problems) == 1 and "CERTIFICATE_VERIFY_FAILED" in problems[0]
        sink = await started(server.url, secret_env="HOOK", ca_bundle=str(ca))
        await sink.open_shard("s").write([change("a", 1, new={})])
        await sink.close()
        assert server.requests[0].verified
    finally:
        await server.stop()


async def test_unreachable_host_pushes_back() -> None:
    sink = await started("http://127.0.0.1:9/hook", secret_env="HOOK", retries=0)
    with pytest.raises(SinkError) as pushed:
        await sink.open_shard("s").write([change("a", 1, new={})])
    assert pushed.value.retriable and "127.0.0.1:9" in str(pushed.value)
    await sink.close()


async def test_lost_lease_stops_sending(receiver: Receiver) -> None:
    sink = await started(receiver.url, secret_env="HOOK")
    shard = sink.open_shard("s")
    await shard.close(lost=True)
    with pytest.raises(ShutdownError):
        await shard.write([change("a", 1, new={})])
    assert receiver.requests == []
    await sink.close()
    assert json.loads(json.dumps({"ok": True}))
    await asyncio.sleep(0)
