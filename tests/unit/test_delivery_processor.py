"""DeliveryProcessor driven directly with a real Checkpointer (no stream, no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from shardline.checkpoint import Checkpointer
from shardline.delivery import DeliveryConfig, fail_fast
from shardline.delivery.invoke import Invoker, batch_invoker
from shardline.delivery.processor import DeliveryProcessor, DeliverySettings
from shardline.errors import ShutdownError
from shardline.metrics import Metrics
from shardline.processor import (
    InitializationInput,
    ProcessRecordsInput,
    ShardEndedInput,
    ShutdownRequestedInput,
)
from shardline.records import StreamRecord

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2024-01-01T00:00:00.000"
SHARD = "shardId-00000001"
T0 = 1_700_000_000.0


def record(seq: int, key: str = "k", created: float = T0, version: int = 0) -> StreamRecord:
    raw = {
        "eventID": f"e{seq}",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": created,
            "Keys": {"pk": {"S": key}},
            "NewImage": {"pk": {"S": key}, "version": {"N": str(version or seq)}},
            "SequenceNumber": f"{seq:021d}",
            "SizeBytes": 40,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    return StreamRecord(raw, SHARD)


def seqs(records: list[StreamRecord]) -> list[int]:
    return [int(r.sequence_number) for r in records]


class MemoryDestination:
    max_bytes: int | None = None

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    async def send(self, name: str, body: bytes) -> None:
        import orjson

        self.documents.append(orjson.loads(body))

    def given_up(self) -> list[int]:
        return [int(r["dynamodb"]["SequenceNumber"]) for d in self.documents for r in d["records"]]


class Harness:
    """One shard: pages in, checkpoints out."""

    def __init__(
        self,
        invoker: Invoker,
        config: DeliveryConfig,
        *,
        wall_clock: Callable[[], float] = lambda: T0 + 1,
    ) -> None:
        self.written: list[str] = []
        self.destination = MemoryDestination()
        self.metrics = Metrics()
        self.checkpointer = Checkpointer(
            SHARD, self._write, asyncio.get_running_loop(), initial="TRIM_HORIZON"
        )
        settings = DeliverySettings(
            stream_arn=ARN,
            destination=self.destination,
            retry_base_delay=0.01,
            retry_max_delay=0.05,
            metrics=self.metrics,
            wall_clock=wall_clock,
        )
        self.processor = DeliveryProcessor(invoker, config, settings)

    async def _write(self, value: str, sub: int) -> None:
        self.written.append(value)

    async def start(self) -> Harness:
        await self.processor.initialize(InitializationInput(SHARD, "TRIM_HORIZON"))
        return self

    async def page(self, records: list[StreamRecord]) -> None:
        if records:
            self.checkpointer.delivered_up_to(records[-1].sequence_number)
        await self.processor.process_records(
            ProcessRecordsInput(SHARD, records, self.checkpointer, 0)
        )

    async def end(self) -> None:
        self.checkpointer.mark_shard_end()
        await asyncio.wait_for(
            self.processor.shard_ended(ShardEndedInput(SHARD, self.checkpointer)), 30
        )

    def checkpoints(self) -> list[int]:
        return [int(v) for v in self.written if v.isdigit()]

    def count(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(name)
        return float(value or 0)


async def harness(handler: Callable[..., Any], **config: Any) -> Harness:
    return await Harness(batch_invoker(handler), DeliveryConfig(**config)).start()


# --- batching -----------------------------------------------------------------------------------


async def test_pages_are_split_to_batch_size_and_the_rest_merged() -> None:
    batches: list[list[int]] = []
    h = await harness(lambda rs: batches.append(seqs(rs)), batch_size=4,
                      maximum_batching_window_in_seconds=60)  # fmt: skip
    await h.page([record(i) for i in range(1, 4)])
    await h.page([record(i) for i in range(4, 11)])
    await h.end()
    assert batches == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert h.written[-1] == "SHARD_END"


async def test_window_zero_invokes_per_page_capped_at_batch_size() -> None:
    batches: list[list[int]] = []
    h = await harness(lambda rs: batches.append(seqs(rs)), batch_size=4)
    await h.page([record(i) for i in range(1, 11)])
    await h.end()
    assert batches == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]


async def test_batching_window_merges_pages_until_it_passes() -> None:
    batches: list[list[int]] = []
    h = await harness(lambda rs: batches.append(seqs(rs)), batch_size=100,
                      maximum_batching_window_in_seconds=0.3)  # fmt: skip
    await h.page([record(1), record(2)])
    await h.page([record(3)])
    assert batches == []
    await asyncio.sleep(0.35)
    await h.page([])  # the consumer's call after an empty page
    await asyncio.sleep(0.2)
    assert batches == [[1, 2, 3]]
    await h.page([])
    assert h.checkpoints() == [3]


# --- retries, bisect, limits ---------------------------------------------------------------------


async def test_default_retries_forever_until_success() -> None:
    calls: list[list[int]] = []

    def flaky(rs: list[StreamRecord]) -> None:
        calls.append(seqs(rs))
        if len(calls) < 3:
            raise RuntimeError("down")

    h = await harness(flaky)
    await h.page([record(1), record(2)])
    await h.end()
    assert calls == [[1, 2]] * 3
    assert h.destination.documents == [] and h.checkpoints() == []
    assert h.written == ["SHARD_END"]
    assert h.count("shardline_invocation_failures_total") == 2


async def test_bisect_with_retries_sends_only_the_poison_record() -> None:
    seen: list[int] = []

    def handler(rs: list[StreamRecord]) -> None:
        if 5 in seqs(rs):
            raise ValueError("poison 5")
        seen.extend(seqs(rs))

    h = await harness(handler, bisect_batch_on_function_error=True, maximum_retry_attempts=2,
                      on_failure="file:///tmp/unused")  # fmt: skip
    await h.page([record(i) for i in range(1, 9)])
    await h.end()
    assert sorted(seen) == [1, 2, 3, 4, 6, 7, 8]
    assert h.destination.given_up() == [5]
    (doc,) = h.destination.documents
    assert doc["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert doc["requestContext"]["approximateInvokeCount"] == 6  # 8, 4, 2 records, then 1 x 3
    assert doc["error"] == {"type": "ValueError", "message": "poison 5"}
    assert doc["DDBStreamBatchInfo"]["shardId"] == SHARD
    assert doc["DDBStreamBatchInfo"]["streamArn"] == ARN
    assert h.count("shardline_records_dropped_total") == 1
    assert h.count("shardline_failure_destination_deliveries_total") == 1
    assert h.checkpoints() == sorted(h.checkpoints())
    assert h.written[-1] == "SHARD_END"


async def test_maximum_record_age_gives_up_without_invoking() -> None:
    calls: list[list[int]] = []
    clock = [T0 + 10]
    h = await Harness(
        batch_invoker(lambda rs: calls.append(seqs(rs))),
        DeliveryConfig(maximum_record_age_in_seconds=60, on_failure="file:///tmp/unused"),
        wall_clock=lambda: clock[0],
    ).start()
    clock[0] = T0 + 61
    await h.page([record(1, created=T0), record(2, created=T0 + 5)])
    await h.end()
    assert calls == [[2]]
    assert h.destination.given_up() == [1]
    doc = h.destination.documents[0]
    assert doc["requestContext"]["condition"] == "MaximumRecordAgeExceeded"


async def test_bisect_retries_and_age_combined() -> None:
    """A poison record keeps failing until it is too old; its neighbours go through."""
    clock = [T0 + 1]
    done: list[int] = []

    def handler(rs: list[StreamRecord]) -> None:
        clock[0] += 20  # every call takes 20 s of record age
        if 3 in seqs(rs):
            raise RuntimeError("poison")
        done.extend(seqs(rs))

    h = await Harness(
        batch_invoker(handler),
        DeliveryConfig(bisect_batch_on_function_error=True, maximum_retry_attempts=-1,
                       maximum_record_age_in_seconds=60, on_failure="file:///tmp/unused"),
        wall_clock=lambda: clock[0],
    ).start()  # fmt: skip
    await h.page([record(1), record(2), record(3), record(4, created=T0 + 100)])
    await h.end()
    assert sorted(done) == [1, 2, 4]
    assert h.destination.given_up() == [3]
    (doc,) = h.destination.documents
    assert doc["requestContext"]["condition"] == "MaximumRecordAgeExceeded"
    assert doc["requestContext"]["approximateInvokeCount"] == 2


async def test_destination_outage_blocks_until_it_recovers() -> None:
    h = await harness(lambda rs: 1 / 0, maximum_retry_attempts=0, on_failure="file:///tmp/x")
    failures = [2]
    real_send = h.destination.send

    async def flaky_send(name: str, body: bytes) -> None:
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("queue down")
        await real_send(name, body)

    h.destination.send = flaky_send  # type: ignore[method-assign]
    await h.page([record(1)])
    await h.end()
    assert h.destination.given_up() == [1] and failures == [0]
    assert h.written == ["SHARD_END"]


# --- partial batch responses and parallelization -----------------------------------------


async def test_partial_failure_checkpoints_before_the_lowest_and_retries_from_it() -> None:
    calls: list[list[int]] = []

    def handler(rs: list[StreamRecord]) -> dict[str, Any]:
        calls.append(seqs(rs))
        if len(calls) == 1:
            failed = [
                {"itemIdentifier": r.sequence_number}
                for r in rs
                if int(r.sequence_number) in (5, 3)
            ]
            return {"batchItemFailures": failed}
        return {"batchItemFailures": []}

    h = await harness(handler, report_batch_item_failures=True)
    await h.page([record(i) for i in range(1, 7)])
    await h.end()
    assert calls == [[1, 2, 3, 4, 5, 6], [3, 4, 5, 6]]
    assert h.checkpoints()[0] == 2


async def test_fail_fast_stops_at_the_first_failing_record() -> None:
    seen: list[int] = []
    attempts = {"n": 0}

    def per_record(r: StreamRecord) -> None:
        if int(r.sequence_number) == 3 and attempts["n"] < 2:
            attempts["n"] += 1
            raise RuntimeError("not yet")
        seen.append(int(r.sequence_number))

    h = await harness(fail_fast(per_record), report_batch_item_failures=True)
    await h.page([record(i) for i in range(1, 6)])
    await h.end()
    assert seen == [1, 2, 3, 4, 5]  # in order, nothing after a failure ran early


async def test_parallel_lanes_keep_key_order_with_partial_failures() -> None:
    processed: list[tuple[str, int]] = []
    failed_once: set[str] = set()

    async def handler(rs: list[StreamRecord]) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        for r in rs:
            key, image = r.keys["pk"], r.new_image
            assert image is not None
            if key in ("k1", "k4") and key not in failed_once and int(image["version"]) == 2:
                failed_once.add(key)
                return {"batchItemFailures": [{"itemIdentifier": r.sequence_number}]}
            processed.append((key, int(image["version"])))
        return {}

    h = await harness(handler, report_batch_item_failures=True, parallelization_factor=4,
                      batch_size=5)  # fmt: skip
    records, seq = [], 1
    for version in range(1, 5):
        for k in range(8):
            records.append(record(seq, key=f"k{k}", version=version))
            seq += 1
    for start in range(0, len(records), 7):
        await h.page(records[start : start + 7])
    await h.end()
    for k in range(8):
        versions = [v for key, v in processed if key == f"k{k}"]
        assert versions == sorted(versions), f"k{k} out of order: {versions}"
        assert set(versions) == {1, 2, 3, 4}
    assert h.checkpoints() == sorted(h.checkpoints())
    assert h.written[-1] == "SHARD_END"


async def test_checkpoint_never_passes_a_batch_in_flight() -> None:
    release = asyncio.Event()

    async def handler(rs: list[StreamRecord]) -> None:
        if rs[0].keys["pk"] == "slow":
            await release.wait()

    keys = ["slow", "a", "b", "c", "d", "e", "f", "g"]
    lanes: dict[int, str] = {}
    from shardline.delivery.batching import lane_of

    for k in keys:
        lanes.setdefault(lane_of({"pk": {"S": k}}, 2), k)
    fast = next(
        k for k in keys if lane_of({"pk": {"S": k}}, 2) != lane_of({"pk": {"S": "slow"}}, 2)
    )
    h = await harness(handler, parallelization_factor=2)
    await h.page([record(1, key="slow"), record(2, key=fast), record(3, key=fast)])
    await asyncio.sleep(0.1)
    await h.page([])
    assert h.checkpoints() == []  # record 1 is in flight, so nothing may be checkpointed
    release.set()
    await asyncio.sleep(0.1)
    await h.page([])
    assert h.checkpoints() == [3]


# --- filters -----------------------------------------------------------------------------


async def test_filtered_records_are_counted_and_checkpointed_past() -> None:
    seen: list[int] = []
    h = await harness(lambda rs: seen.extend(seqs(rs)),
                      filter_criteria={"dynamodb": {"Keys": {"pk": {"S": ["keep"]}}}})  # fmt: skip
    await h.page([record(1, "drop"), record(2, "keep"), record(3, "drop")])
    await asyncio.sleep(0.1)
    await h.page([])
    assert seen == [2]
    assert h.checkpoints()[-1] == 3
    assert h.count("shardline_records_filtered_out_total") == 2


# --- tumbling windows --------------------------------------------------------------------------


async def test_tumbling_window_carries_state_and_checkpoints_at_close() -> None:
    calls: list[tuple[list[int], dict[str, Any], bool]] = []

    def handler(rs: list[StreamRecord], window: Any) -> dict[str, Any]:
        calls.append((seqs(rs), dict(window.state), window.is_final_invoke_for_window))
        total = window.state.get("total", 0) + len(rs)
        return {"state": {"total": total}}

    base = 1_700_000_040.0  # windows of 60 s: [..00:00, ..01:00)
    clock = [base + 1]
    h = await Harness(
        batch_invoker(handler),
        DeliveryConfig(tumbling_window_in_seconds=60, batch_size=2),
        wall_clock=lambda: clock[0],
    ).start()
    await h.page(
        [record(1, created=base), record(2, created=base + 1), record(3, created=base + 2)]
    )
    await asyncio.sleep(0.1)
    await h.page([])
    assert h.checkpoints() == []  # the window is open: nothing checkpointed yet
    await h.page([record(4, created=base + 60)])  # a record of the next window
    await asyncio.sleep(0.1)
    await h.page([])
    assert calls[:3] == [([1, 2], {}, False), ([3], {"total": 2}, False), ([], {"total": 3}, True)]
    assert h.checkpoints() == [3]
    clock[0] = base + 200
    await h.page([])  # the clock closes the second window
    await asyncio.sleep(0.1)
    assert calls[-1] == ([], {"total": 1}, True)
    assert h.checkpoints() == [3, 4]


# --- leases ------------------------------------------------------------------------------


async def test_a_lost_lease_surfaces_as_shutdown_error() -> None:
    h = await harness(lambda rs: None)
    h.checkpointer.disable()
    with pytest.raises(ShutdownError):
        await h.page([record(1)])


async def test_shutdown_waits_for_the_batch_in_flight_and_checkpoints() -> None:
    async def slow(rs: list[StreamRecord]) -> None:
        await asyncio.sleep(0.2)

    h = await harness(slow)
    await h.page([record(1), record(2)])
    await asyncio.sleep(0.05)  # the batch is in flight
    await h.processor.shutdown_requested(ShutdownRequestedInput(SHARD, h.checkpointer))
    assert h.checkpoints() == [2]


def keys_in_two_lanes() -> tuple[str, str]:
    from shardline.delivery.batching import lane_of

    def lane(key: str) -> int:
        return lane_of({"pk": {"S": key}}, 2)

    other = next(k for k in "abcdefgh" if lane(k) != lane("slow"))
    return "slow", other


async def test_lease_loss_ends_a_page_waiting_over_the_high_water() -> None:
    release = asyncio.Event()

    async def blocked(rs: list[StreamRecord]) -> None:
        await release.wait()

    h = await harness(blocked, batch_size=10)  # high water: 10 + 1000 buffered records
    page = asyncio.create_task(h.page([record(i) for i in range(1, 1100)]))
    await asyncio.sleep(0.1)
    assert not page.done()  # the first batch is in flight, the rest over the high water
    h.checkpointer.disable()  # what the consumer does when the lease is lost
    with pytest.raises(ShutdownError):
        await asyncio.wait_for(page, 10)
    release.set()


async def test_an_idle_lane_due_by_its_window_starts_while_the_page_waits() -> None:
    slow, other = keys_in_two_lanes()
    release = asyncio.Event()
    delivered: list[str] = []

    async def handler(rs: list[StreamRecord]) -> None:
        if rs[0].keys["pk"] == slow:
            await release.wait()
        delivered.extend(str(r.keys["pk"]) for r in rs)

    h = await harness(handler, batch_size=10, parallelization_factor=2,
                      maximum_batching_window_in_seconds=0.2)  # fmt: skip
    # one record of the other lane (not a full batch: due only when its window passes),
    # then enough of the slow lane to stay over the high water (2 * 10 + 1000)
    page = [record(1, key=other)] + [record(i, key=slow) for i in range(2, 1100)]
    waiting = asyncio.create_task(h.page(page))
    for _ in range(200):
        if other in delivered:
            break
        await asyncio.sleep(0.02)
    assert delivered == [other] and not waiting.done()
    release.set()
    await asyncio.wait_for(waiting, 10)
