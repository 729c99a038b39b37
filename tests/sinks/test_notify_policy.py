"""Pure parts of the notification sinks: retry decisions, Retry-After, per-key units, proxies."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardline.sinks.keyorder import plan_units, run_units
from shardline.sinks.send_policy import RetryPolicy, backoff, parse_retry_after, parse_retry_on
from shardline.sinks.webhook_transport import proxied


def test_retry_on_and_classify() -> None:
    policy = RetryPolicy()
    assert [policy.classify(s) for s in (200, 204, 408, 429, 500, 503, 400, 404, 301)] == [
        "delivered", "delivered", "retry", "retry", "retry", "retry", "failed", "failed",
        "failed",
    ]  # fmt: skip
    assert parse_retry_on("429, 4xx") >= {400, 429, 499}
    assert 500 not in parse_retry_on("429")
    with pytest.raises(ValueError, match="not an HTTP error status"):
        parse_retry_on("2xx")


def test_retry_after_and_backoff() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    policy = RetryPolicy(base_delay=0.2, max_delay=10.0, max_retry_after=60.0)
    assert policy.delay(1, 600.0) == 60.0
    assert all(0.1 <= backoff(n, 0.2, 10.0) <= 10.0 for n in range(1, 40))
    assert backoff(3, 0.2, 10.0, rng=lambda: 1.0) == pytest.approx(0.8)


def test_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy",
                 "no_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example,.corp")
    assert proxied("https://hooks.example.com/x")
    assert not proxied("https://a.internal.example/x")
    assert not proxied("https://svc.corp/x")
    assert not proxied("http://hooks.example.com/x")


@given(
    st.lists(st.sampled_from("abcde"), min_size=1, max_size=40),
    st.integers(1, 4),
    st.integers(1, 3),
)
def test_units_keep_each_keys_order(keys: list[str], batch: int, concurrency: int) -> None:
    items = list(enumerate(keys))
    units = plan_units(items, lambda i: i[1], batch=batch, concurrency=concurrency)
    assert sorted(i for unit in units for i in unit) == items
    for unit in units:
        assert unit == sorted(unit)  # input order within a unit
    owners = {key: [n for n, unit in enumerate(units) if any(k == key for _, k in unit)]
              for key in set(keys)}  # fmt: skip
    assert all(len(found) == 1 for found in owners.values())  # a key lives in one unit
    sent: list[tuple[int, str]] = []

    async def send(chunk: Sequence[tuple[int, str]]) -> None:
        await asyncio.sleep(0)
        if any(k == "e" for _, k in chunk):
            raise RuntimeError("refused")
        sent.extend(chunk)

    errors = asyncio.run(run_units(units, send, batch=batch, concurrency=concurrency))
    for key in set(keys) - {"e"}:
        if batch == 1:
            assert [i for i in sent if i[1] == key] == [i for i in items if i[1] == key]
    assert len(errors) <= len(units)
    positions = {item: n for n, item in enumerate(sent)}
    for key in set(keys):
        mine = [positions[i] for i in items if i[1] == key and i in positions]
        assert mine == sorted(mine)
