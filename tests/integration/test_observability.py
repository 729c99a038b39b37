"""/metrics scraped over HTTP and parsed by prometheus_client; /health; JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shardline.delivery import DeliveryConfig
from shardline.metrics import Metrics
from shardline.observability import JsonFormatter, ObservabilityServer
from tests.integration.support import create_stream_table, unique
from tests.integration.test_delivery_local import Running, put, wait_for

pytestmark = pytest.mark.integration


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_of_a_live_worker_parse_with_prometheus_client(local_stack: Any) -> None:
    table = unique("obs")
    arn = create_stream_table(local_stack.endpoint_url, table)
    put(local_stack, table, "a", "b", "skip")
    seen: list[str] = []
    pattern = {"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": ["a", "b"]}}}}
    config = DeliveryConfig(filter_criteria=pattern)
    handler = lambda rs: seen.extend(r.keys["pk"] for r in rs)  # noqa: E731
    async with Running(local_stack, table, handler, config, stream_arn=arn) as run:
        await wait_for(lambda: sorted(seen) == ["a", "b"], 30, "records")
        async with ObservabilityServer(run.metrics, run.worker) as server:
            await asyncio.sleep(0.3)
            status, text = await get(f"{server.url}/metrics")
            health_status, health = await get(f"{server.url}/health")
    assert status == 200
    values = samples(text)
    assert values[("shardline_records_polled_total", ())] >= 3
    assert values[("shardline_records_filtered_out_total", ())] == 1
    assert values[("shardline_invocations_total", ())] >= 1
    assert values[("shardline_get_records_calls_total", ())] >= 1
    assert ("shardline_leases_held", ()) in values
    assert any(name == "shardline_iterator_age_milliseconds" for name, _ in values)
    assert health_status in (200, 503)
    body = json.loads(health)
    assert set(body) >= {"ready", "healthy", "leases", "detail"}


class FakeWorker:
    def __init__(self, **health: Any) -> None:
        self.answer = {"ready": True, "healthy": True, "leases": 2, "detail": "ok", **health}

    def health(self) -> dict[str, Any]:
        return self.answer


@pytest.mark.parametrize(
    ("health", "codes"),
    [
        ({}, (200, 200, 200)),
        ({"ready": False, "leases": 0, "detail": "taking leases"}, (503, 200, 503)),
        ({"healthy": False, "detail": "cannot renew"}, (503, 200, 503)),
        ({"ready": False, "healthy": False, "detail": "both"}, (503, 200, 503)),
    ],
)
async def test_health_endpoints(health: dict[str, Any], codes: tuple[int, int, int]) -> None:
    """/health/ready answers as /health does; /health/live only says the loop answers."""
    async with ObservabilityServer(Metrics(), FakeWorker(**health)) as server:
        got = [(await get(f"{server.url}{path}"))[0]
               for path in ("/health", "/health/live", "/health/ready")]  # fmt: skip
        _, body = await get(f"{server.url}/health")
        _, ready_body = await get(f"{server.url}/health/ready")
    assert tuple(got) == codes
    assert json.loads(body)["detail"] == FakeWorker(**health).answer["detail"]
    assert json.loads(ready_body) == json.loads(body)


async def test_ready_and_healthy_gauges_follow_the_worker_while_serving() -> None:
    worker = FakeWorker(ready=False, leases=0)
    metrics = Metrics()
    async with ObservabilityServer(metrics, worker) as server:
        first = samples((await get(f"{server.url}/metrics"))[1])
        worker.answer.update(ready=True, healthy=False)
        second = samples((await get(f"{server.url}/metrics"))[1])
    assert (first[("shardline_ready", ())], first[("shardline_healthy", ())]) == (0.0, 1.0)
    assert (second[("shardline_ready", ())], second[("shardline_healthy", ())]) == (1.0, 0.0)
    # stopped: the gauges leave the registry (a new server may register them again)
    assert metrics.registry.get_sample_value("shardline_ready") is None
    async with ObservabilityServer(metrics, worker) as server:
        assert (await get(f"{server.url}/metrics"))[0] == 200


async def test_live_answers_while_the_loop_runs_and_not_when_it_is_blocked() -> None:
    """Liveness is the event loop answering: while the loop is blocked (here: joining the
    probing thread), the probe gets no answer whatever the timing."""
    import threading
    import urllib.request

    async with ObservabilityServer(Metrics(), FakeWorker(healthy=False)) as server:
        assert (await get(f"{server.url}/health/live"))[0] == 200
        outcome: list[str] = []

        def probe() -> None:  # another thread, as the kubelet is another process
            try:
                with urllib.request.urlopen(f"{server.url}/health/live", timeout=0.5):
                    outcome.append("answered")
            except OSError:
                outcome.append("no answer")

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()  # blocks the loop until the probe gave up
        assert outcome == ["no answer"]
        assert (await get(f"{server.url}/health/live"))[0] == 200


async def test_health_before_a_worker_and_with_a_broken_one() -> None:
    class Broken:
        def health(self) -> dict[str, Any]:
            raise RuntimeError("no")

    async with ObservabilityServer(Metrics()) as server:
        assert (await get(f"{server.url}/health"))[0] == 503
        assert (await get(f"{server.url}/health/ready"))[0] == 503
        assert (await get(f"{server.url}/health/live"))[0] == 200
    async with ObservabilityServer(Metrics(), Broken()) as server:
        status, body = await get(f"{server.url}/health")
    assert status == 503 and "RuntimeError" in json.loads(body)["detail"]


def test_json_log_lines() -> None:
    logger = logging.getLogger("shardline.test")
    record = logger.makeRecord(
        "shardline.test", logging.ERROR, __file__, 1, "shard %s failed", ("s-1",), None,
        extra={"shard": "s-1"},
    )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "shard s-1 failed" and line["level"] == "ERROR"
    assert line["shard"] == "s-1" and line["logger"] == "shardline.test"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logger.makeRecord("x", logging.ERROR, __file__, 1, "m", (), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["exc_type"] == "ValueError" and "boom" in line["exc_info"]
