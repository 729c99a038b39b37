"""The pure shard graph of the local stack: routing, lineage, sequence numbers, paging."""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardline.local.graph import (
    HASH_KEY_MAX,
    InvalidRequestError,
    ShardGraph,
    ShardNotFoundError,
    TrimmedDataError,
    hash_key_of,
)

SHARD_ID = re.compile(r"^shardId-\d{20}-[0-9a-f]{8}$")


def make_graph() -> ShardGraph:
    return ShardGraph(clock_ms=lambda: 1_700_000_000_000, rng=random.Random(7))


def put(graph: ShardGraph, key: str) -> str:
    """Append a record whose bytes are its key and sequence number."""
    return graph.append(key.encode(), lambda seq: f"{key}@{seq}".encode())


def by_id(graph: ShardGraph) -> dict[str, dict[str, Any]]:
    return {shard["ShardId"]: shard for shard in graph.shards()}


def read_all(graph: ShardGraph, shard_id: str) -> list[bytes]:
    page = graph.read(
        shard_id, graph.position(shard_id, "TRIM_HORIZON", None), limit=1000, max_bytes=1 << 20
    )
    return page.records


def test_new_graph_has_one_open_shard_with_aws_shaped_ids() -> None:
    shards = make_graph().shards()
    assert len(shards) == 1
    assert SHARD_ID.match(shards[0]["ShardId"])
    assert shards[0]["ShardId"].startswith("shardId-00000001700000000000-")
    start = shards[0]["SequenceNumberRange"]["StartingSequenceNumber"]
    assert start.isdigit() and len(start) >= 21
    assert "EndingSequenceNumber" not in shards[0]["SequenceNumberRange"]
    assert "ParentShardId" not in shards[0]


def test_sequence_numbers_increase_across_shards() -> None:
    graph = make_graph()
    seqs = [put(graph, f"k{i}") for i in range(5)]
    graph.split()
    seqs += [put(graph, f"k{i}") for i in range(5)]
    graph.rollover()
    seqs += [put(graph, f"k{i}") for i in range(5)]
    numbers = [int(seq) for seq in seqs]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert all(len(seq) >= 21 for seq in seqs)


def test_split_closes_parent_and_halves_its_range() -> None:
    graph = make_graph()
    parent = graph.shards()[0]["ShardId"]
    put(graph, "a")
    children = graph.split()
    assert len(children) == 2
    shards = by_id(graph)
    assert "EndingSequenceNumber" in shards[parent]["SequenceNumberRange"]
    assert all(shards[child]["ParentShardId"] == parent for child in children)
    assert graph.open_shard_ids() == children
    lows = {graph.route(key.encode()) for key in map(str, range(200))}
    assert lows == set(children)  # both halves receive keys
    for key in map(str, range(50)):
        child = graph.route(key.encode())
        lower_half = hash_key_of(key.encode()) <= HASH_KEY_MAX // 2
        assert child == children[0 if lower_half else 1]


def test_rollover_gives_each_open_shard_one_child_with_the_same_range() -> None:
    graph = make_graph()
    graph.split()
    before = {key: graph.route(key.encode()) for key in map(str, range(100))}
    children = graph.rollover()
    assert len(children) == 2
    shards = by_id(graph)
    for key, old in before.items():
        assert shards[graph.route(key.encode())]["ParentShardId"] == old


def test_records_land_in_the_routed_shard() -> None:
    graph = make_graph()
    graph.split()
    shard = graph.route(b"x")
    put(graph, "x")
    assert read_all(graph, shard)[0].startswith(b"x@")
    other = next(s for s in graph.open_shard_ids() if s != shard)
    assert read_all(graph, other) == []


def test_closed_shard_ending_number_bounds_its_records() -> None:
    graph = make_graph()
    first = graph.shards()[0]["ShardId"]
    seqs = [int(put(graph, "k")) for _ in range(3)]
    graph.rollover()
    seq_range = by_id(graph)[first]["SequenceNumberRange"]
    assert int(seq_range["StartingSequenceNumber"]) < seqs[0]
    assert seqs[-1] < int(seq_range["EndingSequenceNumber"])


def test_split_rejects_closed_and_unknown_shards() -> None:
    graph = make_graph()
    first = graph.shards()[0]["ShardId"]
    graph.split()
    with pytest.raises(InvalidRequestError):
        graph.split(first)
    with pytest.raises(ShardNotFoundError):
        graph.split("shardId-nope")


def test_close_all_disables_writes() -> None:
    graph = make_graph()
    graph.close_all()
    assert graph.open_shard_ids() == []
    assert graph.rollover() == []
    with pytest.raises(InvalidRequestError):
        put(graph, "k")
    with pytest.raises(InvalidRequestError):
        graph.split()


# --- describe ----------------------------------------------------------------------


def test_describe_pages_with_limit_and_exclusive_start() -> None:
    graph = make_graph()
    graph.split()
    graph.rollover()  # 1 + 2 + 2 shards
    everything = [shard["ShardId"] for shard in graph.shards()]
    seen: list[str] = []
    start = None
    while True:
        listing = graph.describe(limit=2, exclusive_start_shard_id=start)
        seen += [shard["ShardId"] for shard in listing.shards]
        start = listing.last_evaluated_shard_id
        if start is None:
            break
    assert seen == everything
    assert graph.describe().last_evaluated_shard_id is None


def test_describe_child_filter_and_children_first() -> None:
    graph = make_graph()
    root = graph.shards()[0]["ShardId"]
    children = graph.split()
    grandchildren = graph.rollover()
    listed = graph.describe(children_of=root).shards
    assert [shard["ShardId"] for shard in listed] == children
    listed = graph.describe(children_of=children[0]).shards
    assert [shard["ShardId"] for shard in listed] == grandchildren[:1]
    reversed_ids = [shard["ShardId"] for shard in graph.describe(children_first=True).shards]
    assert reversed_ids == [shard["ShardId"] for shard in graph.shards()][::-1]


@pytest.mark.parametrize("limit", [0, 101])
def test_describe_rejects_limit_out_of_range(limit: int) -> None:
    with pytest.raises(InvalidRequestError):
        make_graph().describe(limit=limit)


def test_describe_unknown_shard_ids_are_not_found() -> None:
    graph = make_graph()
    with pytest.raises(ShardNotFoundError):
        graph.describe(exclusive_start_shard_id="shardId-x")
    with pytest.raises(ShardNotFoundError):
        graph.describe(children_of="shardId-x")


# --- positions and reads -----------------------------------------------------------


def test_positions_of_each_iterator_type() -> None:
    graph = make_graph()
    shard = graph.shards()[0]["ShardId"]
    seqs = [put(graph, "k") for _ in range(3)]
    start = int(graph.shards()[0]["SequenceNumberRange"]["StartingSequenceNumber"])
    assert graph.position(shard, "TRIM_HORIZON", None) == start
    assert graph.position(shard, "LATEST", None) == int(seqs[-1]) + 1
    assert graph.position(shard, "AT_SEQUENCE_NUMBER", seqs[1]) == int(seqs[1])
    assert graph.position(shard, "AFTER_SEQUENCE_NUMBER", seqs[1]) == int(seqs[2])


def test_position_errors() -> None:
    graph = make_graph()
    graph.split()
    child = graph.open_shard_ids()[0]
    start = int(by_id(graph)[child]["SequenceNumberRange"]["StartingSequenceNumber"])
    with pytest.raises(InvalidRequestError):
        graph.position(child, "AT_SEQUENCE_NUMBER", None)
    with pytest.raises(InvalidRequestError):
        graph.position(child, "AFTER_SEQUENCE_NUMBER", "12x")
    with pytest.raises(InvalidRequestError):
        graph.position(child, "AT_TIMESTAMP", None)
    with pytest.raises(TrimmedDataError):
        graph.position(child, "AT_SEQUENCE_NUMBER", str(start - 1))
    with pytest.raises(ShardNotFoundError):
        graph.position("shardId-unknown", "TRIM_HORIZON", None)


def test_read_pages_by_limit_and_bytes() -> None:
    graph = make_graph()
    shard = graph.shards()[0]["ShardId"]
    for i in range(10):
        put(graph, f"k{i}")
    position = graph.position(shard, "TRIM_HORIZON", None)
    page = graph.read(shard, position, limit=4, max_bytes=1 << 20)
    assert len(page.records) == 4
    record_size = len(page.records[0])
    page = graph.read(shard, page.next_position or 0, limit=100, max_bytes=record_size * 3)
    assert [r.split(b"@")[0] for r in page.records] == [b"k4", b"k5", b"k6"]
    tiny = graph.read(shard, position, limit=100, max_bytes=1)
    assert len(tiny.records) == 1  # a page always carries at least one record


def test_open_shard_always_has_a_next_position() -> None:
    graph = make_graph()
    shard = graph.shards()[0]["ShardId"]
    latest = graph.position(shard, "LATEST", None)
    page = graph.read(shard, latest, limit=10, max_bytes=1 << 20)
    assert page.records == [] and page.next_position == latest
    put(graph, "k")
    page = graph.read(shard, latest, limit=10, max_bytes=1 << 20)
    assert len(page.records) == 1 and page.next_position is not None


def test_closed_shard_end_eager() -> None:
    graph = make_graph()
    shard = graph.shards()[0]["ShardId"]
    for _ in range(3):
        put(graph, "k")
    graph.rollover()
    position = graph.position(shard, "TRIM_HORIZON", None)
    first = graph.read(shard, position, limit=2, max_bytes=1 << 20)
    assert len(first.records) == 2 and first.next_position is not None
    last = graph.read(shard, first.next_position, limit=2, max_bytes=1 << 20)
    assert len(last.records) == 1 and last.next_position is None


def test_closed_shard_end_lazy() -> None:
    graph = make_graph()
    shard = graph.shards()[0]["ShardId"]
    put(graph, "k")
    graph.rollover()
    position = graph.position(shard, "TRIM_HORIZON", None)
    page = graph.read(shard, position, limit=10, max_bytes=1 << 20, eager_shard_end=False)
    assert len(page.records) == 1 and page.next_position is not None
    end = graph.read(shard, page.next_position, limit=10, max_bytes=1 << 20, eager_shard_end=False)
    assert end.records == [] and end.next_position is None


def test_latest_on_a_closed_shard_is_its_end() -> None:
    graph = make_graph()
    shard = graph.shards()[0]["ShardId"]
    put(graph, "k")
    graph.rollover()
    page = graph.read(shard, graph.position(shard, "LATEST", None), limit=10, max_bytes=1 << 20)
    assert page.records == [] and page.next_position is None


# --- properties --------------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 15)),
        st.tuples(st.just("split"), st.integers(0, 7)),
        st.tuples(st.just("rollover"), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_every_key_moves_only_to_descendants(ops: list[tuple[str, int]]) -> None:
    graph = make_graph()
    trail: dict[int, list[tuple[str, int]]] = {}  # key -> [(shard, seq)]
    for op, arg in ops:
        if op == "put":
            shard = graph.route(str(arg).encode())
            trail.setdefault(arg, []).append((shard, int(put(graph, str(arg)))))
        elif op == "split":
            open_ids = graph.open_shard_ids()
            graph.split(open_ids[arg % len(open_ids)])
        else:
            graph.rollover()
    parents = {s["ShardId"]: s.get("ParentShardId") for s in graph.shards()}

    def is_descendant(shard: str | None, ancestor: str) -> bool:
        while shard is not None:
            if shard == ancestor:
                return True
            shard = parents[shard]
        return False

    for steps in trail.values():
        for (before, seq_before), (after, seq_after) in itertools.pairwise(steps):
            assert seq_before < seq_after
            assert is_descendant(after, before)


@settings(max_examples=100, deadline=None)
@given(operations)
def test_open_shards_partition_the_key_space_and_records_fit_their_shard(
    ops: list[tuple[str, int]],
) -> None:
    graph = make_graph()
    for op, arg in ops:
        if op == "put":
            put(graph, str(arg))
        elif op == "split":
            graph.split()
        else:
            graph.rollover()
    all_seqs: list[int] = []
    for shard in graph.shards():
        seq_range = shard["SequenceNumberRange"]
        start = int(seq_range["StartingSequenceNumber"])
        end = int(seq_range.get("EndingSequenceNumber", 10**40))
        seqs = [int(r.split(b"@")[1]) for r in read_all(graph, shard["ShardId"])]
        assert all(start < seq < end for seq in seqs)
        all_seqs += seqs
    assert len(set(all_seqs)) == len(all_seqs)
    for key in map(str, range(30)):  # every key has exactly one open owner
        assert graph.route(key.encode()) in graph.open_shard_ids()
