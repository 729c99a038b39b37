"""The shard graph's retention (trimming, shards that disappear) and parents left open."""

from __future__ import annotations

import random

import pytest

from shardline.local.graph import ShardGraph, ShardNotFoundError, TrimmedDataError


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def make() -> tuple[ShardGraph, Clock]:
    clock = Clock()
    return ShardGraph(clock_ms=clock, rng=random.Random(1)), clock


def put(graph: ShardGraph, key: str) -> int:
    return int(graph.append(key.encode(), lambda seq: f"{key}@{seq}".encode()))


def read(graph: ShardGraph, shard: str, position: int) -> list[bytes]:
    return graph.read(shard, position, limit=1000, max_bytes=1 << 20).records


def test_old_records_are_trimmed_and_trim_horizon_moves() -> None:
    graph, clock = make()
    (shard,) = graph.open_shard_ids()
    start = graph.position(shard, "TRIM_HORIZON", None)
    first = put(graph, "a")
    clock.now += 5_000
    second = put(graph, "b")
    assert graph.expire(retention_ms=3_000) == 1
    assert graph.position(shard, "TRIM_HORIZON", None) == first + 1
    assert read(graph, shard, first + 1) == [f"b@{second}".encode()]
    with pytest.raises(TrimmedDataError):
        read(graph, shard, start)  # an iterator from before the trim
    with pytest.raises(TrimmedDataError):
        graph.position(shard, "AT_SEQUENCE_NUMBER", str(first))
    assert graph.position(shard, "AFTER_SEQUENCE_NUMBER", str(first + 1)) == first + 2


def test_a_reader_at_the_tip_is_not_trimmed() -> None:
    graph, clock = make()
    (shard,) = graph.open_shard_ids()
    seq = put(graph, "a")
    clock.now += 10_000
    graph.expire(retention_ms=1_000)
    assert read(graph, shard, seq + 1) == []


def test_closed_shards_older_than_the_retention_disappear() -> None:
    graph, clock = make()
    (parent,) = graph.open_shard_ids()
    put(graph, "a")
    (child,) = graph.rollover()
    clock.now += 2_000
    graph.expire(retention_ms=1_000)
    assert [s["ShardId"] for s in graph.shards()] == [child]
    assert graph.shards()[0]["ParentShardId"] == parent  # dangling, as on AWS
    with pytest.raises(ShardNotFoundError):
        graph.position(parent, "TRIM_HORIZON", None)
    assert graph.describe(children_of=child).shards == []


def test_a_parent_left_open_takes_writes_until_closed() -> None:
    graph, _ = make()
    (parent,) = graph.open_shard_ids()
    children = graph.split(parent_open=True)
    listed = {s["ShardId"]: s for s in graph.shards()}
    assert "EndingSequenceNumber" not in listed[parent]["SequenceNumberRange"]
    assert all(listed[c]["ParentShardId"] == parent for c in children)
    assert graph.open_shard_ids() == [parent]
    assert graph.route(b"k") == parent
    assert graph.close_pending() == [parent]
    assert "EndingSequenceNumber" in graph.shards()[0]["SequenceNumberRange"]
    assert graph.open_shard_ids() == children
    assert graph.close_pending() == []


def test_a_new_change_closes_pending_parents_first() -> None:
    graph, _ = make()
    (parent,) = graph.open_shard_ids()
    (child,) = graph.rollover(parent_open=True)
    (grandchild,) = graph.rollover(parent_open=False)
    shards = {s["ShardId"]: s for s in graph.shards()}
    assert "EndingSequenceNumber" in shards[parent]["SequenceNumberRange"]
    assert "EndingSequenceNumber" in shards[child]["SequenceNumberRange"]
    assert graph.open_shard_ids() == [grandchild]


def test_rollover_of_one_shard() -> None:
    graph, _ = make()
    left, right = graph.split()
    (child,) = graph.rollover(right)
    assert graph.open_shard_ids() == [left, child]
