"""Pure delivery decisions: retry plans, bisect, frontier, batching, windows, documents."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from shardline.delivery.batching import batch_ready, cut_batch, lane_of
from shardline.delivery.document import FailedBatch, failure_documents
from shardline.delivery.frontier import Frontier
from shardline.delivery.plan import (
    Attempt,
    expired_prefix,
    first_failure,
    plan_failure,
)
from shardline.delivery.windows import window_of
from shardline.records import StreamRecord

# --- partial batch responses ---------------------------------------------------------------

SEQS = ["100", "200", "300", "400"]


def test_no_or_empty_response_is_success() -> None:
    responses: list[object] = [
        None,
        {},
        {"batchItemFailures": []},
        {"batchItemFailures": None},
        "ok",
    ]
    for response in responses:
        assert first_failure(response, SEQS) is None


def test_lowest_reported_failure_wins() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "400"}, {"itemIdentifier": "200"}]}
    assert first_failure(response, SEQS) == 1


def test_malformed_failures_fail_the_whole_batch() -> None:
    for entry in ({"itemIdentifier": ""}, {"itemIdentifier": None}, {"id": "200"}, "200"):
        assert first_failure({"batchItemFailures": [entry]}, SEQS) == 0
    assert first_failure({"batchItemFailures": [{"itemIdentifier": "999"}]}, SEQS) == 0
    assert first_failure({"batchItemFailures": "200"}, SEQS) == 0


# --- failure plans ------------------------------------------------------------------------------


def simulate(
    n: int, poison: set[int], *, bisect: bool, retries: int, partial: bool = False
) -> tuple[list[int], list[int], int]:
    """Run the planner to the end: (done, given up, invocations)."""
    queue = [Attempt(list(range(n)), 0)]
    done: list[int] = []
    given_up: list[int] = []
    invocations = 0
    while queue:
        attempt = queue.pop(0)
        invocations += 1
        bad = [i for i, r in enumerate(attempt.records) if r in poison]
        if not bad:
            done += attempt.records
            continue
        plan = plan_failure(
            attempt,
            bad[0] if partial else 0,
            bisect=bisect,
            maximum_retry_attempts=retries,
        )
        done += plan.done
        given_up += plan.give_up
        queue[0:0] = plan.next
        assert invocations < 10_000
    return done, given_up, invocations


def test_bisect_isolates_one_poison_record() -> None:
    done, given_up, _ = simulate(8, {5}, bisect=True, retries=2)
    assert given_up == [5]
    assert sorted(done) == [0, 1, 2, 3, 4, 6, 7]


def test_without_bisect_the_whole_batch_is_given_up_after_retries() -> None:
    done, given_up, invocations = simulate(8, {5}, bisect=False, retries=2)
    assert given_up == list(range(8)) and done == []
    assert invocations == 3  # one call and two retries


def test_partial_response_retries_from_the_failure() -> None:
    done, given_up, invocations = simulate(6, {3}, bisect=False, retries=1, partial=True)
    assert done == [0, 1, 2] and given_up == [3, 4, 5] and invocations == 2


def test_split_does_not_count_as_a_retry() -> None:
    plan = plan_failure(Attempt([1, 2, 3], 2), 0, bisect=True, maximum_retry_attempts=2)
    assert [a.records for a in plan.next] == [[1, 2], [3]]
    assert all(a.failures == 2 for a in plan.next) and not plan.backoff


@given(
    n=st.integers(1, 40),
    poison=st.sets(st.integers(0, 39)),
    bisect=st.booleans(),
    retries=st.integers(0, 3),
    partial=st.booleans(),
)
def test_every_record_is_done_or_given_up_exactly_once_in_order(
    n: int, poison: set[int], bisect: bool, retries: int, partial: bool
) -> None:
    poison = {p for p in poison if p < n}
    done, given_up, _ = simulate(n, poison, bisect=bisect, retries=retries, partial=partial)
    assert sorted(done + given_up) == list(range(n))
    assert poison <= set(given_up)
    assert done == sorted(done) and given_up == sorted(given_up)
    if bisect and not partial:
        assert set(given_up) == poison  # bisect isolates exactly the poison records


def test_expired_prefix() -> None:
    assert expired_prefix([0, 10, 100], now=150, maximum_age=60) == 2
    assert expired_prefix([0, 10], now=10**9, maximum_age=-1) == 0


# --- frontier ------------------------------------------------------------------------------------


@given(st.integers(1, 60), st.randoms(use_true_random=False))
def test_frontier_never_passes_an_unfinished_record(n: int, rng: random.Random) -> None:
    seqs = [str(100 + i) for i in range(n)]
    frontier = Frontier()
    frontier.register(seqs)
    order = seqs[:]
    rng.shuffle(order)
    finished: set[str] = set()
    for seq in order:
        finished.add(seq)
        frontier.mark_done([seq])
        value = frontier.value
        if value is not None:
            assert all(s in finished for s in seqs[: seqs.index(value) + 1])
            nxt = seqs.index(value) + 1
            assert nxt == n or seqs[nxt] not in finished
    assert frontier.value == seqs[-1] and frontier.all_done()


# --- batching ----------------------------------------------------------------------------------


def test_batch_readiness() -> None:
    assert not batch_ready(0, batch_size=10, window=0, waited=0)
    assert batch_ready(1, batch_size=10, window=0, waited=0)
    assert not batch_ready(5, batch_size=10, window=2, waited=1)
    assert batch_ready(5, batch_size=10, window=2, waited=2)
    assert batch_ready(10, batch_size=10, window=2, waited=0)
    assert batch_ready(1, batch_size=10, window=2, waited=0, flush=True)


@given(st.lists(st.integers(), max_size=50), st.integers(1, 20))
def test_cut_batch_keeps_order(buffer: list[int], size: int) -> None:
    batch, rest = cut_batch(buffer, size)
    assert batch + rest == buffer and len(batch) == min(size, len(buffer))


@given(st.dictionaries(st.text(max_size=3), st.text(max_size=3), min_size=1), st.integers(1, 10))
def test_lane_is_stable_and_in_range(keys: dict[str, str], lanes: int) -> None:
    typed = {k: {"S": v} for k, v in keys.items()}
    lane = lane_of(typed, lanes)
    assert 0 <= lane < lanes
    assert lane == lane_of(dict(reversed(list(typed.items()))), lanes)


def test_windows_are_aligned_to_the_epoch() -> None:
    window = window_of(1_700_000_123.7, 60)
    assert (window.start, window.end) == (1_700_000_100.0, 1_700_000_160.0)
    assert window.contains(1_700_000_159.9) and not window.contains(1_700_000_160)
    assert window.iso() == ("2023-11-14T22:15:00Z", "2023-11-14T22:16:00Z")


# --- failure documents ---------------------------------------------------------------------------


def raw(seq: int, payload: str = "x") -> dict[str, object]:
    return {
        "eventID": f"e{seq}",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_700_000_000.0,
            "Keys": {"pk": {"S": f"k{seq}"}},
            "NewImage": {"pk": {"S": f"k{seq}"}, "blob": {"S": payload}},
            "SequenceNumber": str(seq),
            "SizeBytes": 10,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def test_document_carries_records_error_attempts_range_and_arn() -> None:
    batch = FailedBatch(
        "shardId-1", "arn:aws:dynamodb:us-east-1:1:table/T/stream/S",
        [StreamRecord(raw(s), "shardId-1") for s in (101, 102)],
        "RetryAttemptsExhausted", 3, "ValueError", "boom",
    )  # fmt: skip
    (doc,) = failure_documents(batch)
    info = doc["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == ("101", "102")
    assert info["streamArn"].endswith("stream/S") and info["batchSize"] == 2
    assert doc["requestContext"]["approximateInvokeCount"] == 3
    assert doc["error"] == {"type": "ValueError", "message": "boom"}
    assert doc["records"][0]["dynamodb"]["NewImage"]["blob"] == {"S": "x"}
    assert doc["records"][0]["eventSourceARN"] == info["streamArn"]


def test_large_batches_are_split_into_parts_under_the_limit() -> None:
    import orjson

    records = [StreamRecord(raw(s, "y" * 50_000), "s") for s in range(100, 112)]
    batch = FailedBatch("s", "arn", records, "RetryAttemptsExhausted", 1, "E", "m")
    documents = failure_documents(batch, max_bytes=262_144)
    assert len(documents) > 1
    assert all(len(orjson.dumps(d)) <= 262_144 for d in documents)
    assert [r["dynamodb"]["SequenceNumber"] for d in documents for r in d["records"]] == [
        str(s) for s in range(100, 112)
    ]
    assert documents[-1]["part"] == {"index": len(documents) - 1, "count": len(documents)}
