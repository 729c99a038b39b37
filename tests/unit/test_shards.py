"""The shard graph: lineage, lease creation, start order and lease cleanup."""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardline.leases.model import LATEST, SHARD_END, TRIM_HORIZON, Lease
from shardline.streams.model import Shard
from shardline.streams.shards import (
    CLOSED_PARENT_END,
    NewLease,
    build_lineage,
    leases_to_create,
    leases_to_delete,
    may_start,
)


def shard(sid: str, parent: str | None = None, start: int = 0, end: int | None = None) -> Shard:
    return Shard(sid, parent, str(start), None if end is None else str(end))


def lease(
    key: str,
    checkpoint: str = TRIM_HORIZON,
    parents: Iterable[str] = (),
    children: Iterable[str] = (),
) -> Lease:
    return Lease(
        key,
        checkpoint=checkpoint,
        parent_shard_ids=frozenset(parents),
        child_shard_ids=frozenset(children),
    )


def as_leases(new: Iterable[NewLease]) -> dict[str, Lease]:
    return {n.shard_id: lease(n.shard_id, n.checkpoint, n.parent_shard_ids) for n in new}


# A small stream: trimmed parent "t0" of "a"; a -> b (rollover); b -> c, d (split);
# c open; d closed with no child listed yet; e an unrelated open root.
SMALL = [
    shard("a", "t0", 10, 19),
    shard("b", "a", 20, 29),
    shard("c", "b", 30),
    shard("d", "b", 31, 39),
    shard("e", None, 5),
]


# --- build_lineage --------------------------------------------------------------------


def test_lineage_in_any_order() -> None:
    for order in (SMALL, SMALL[::-1], [SMALL[2], SMALL[0], SMALL[4], SMALL[3], SMALL[1]]):
        lineage = build_lineage(order)
        assert lineage.parents == {"a": None, "b": "a", "c": "b", "d": "b", "e": None}
        assert lineage.children == {"a": ("b",), "b": ("c", "d"), "c": (), "d": (), "e": ()}
        assert lineage.ancestors("d") == ["b", "a"]
        assert lineage.is_leaf("d") and not lineage.is_leaf("b")


def test_open_parent_with_listed_child_is_closed() -> None:
    lineage = build_lineage([shard("c", "p", 20), shard("p", None, 10)])
    assert lineage.shards["p"].ending_sequence_number == CLOSED_PARENT_END
    assert not lineage.shards["p"].is_open
    assert lineage.shards["c"].is_open


def test_duplicates_keep_the_closed_copy() -> None:
    lineage = build_lineage([shard("a", None, 1), shard("a", None, 1, 9), shard("a", None, 1)])
    assert lineage.shards["a"].ending_sequence_number == "9"


def test_cycles_in_corrupt_input_are_cut() -> None:
    lineage = build_lineage([shard("x", "y"), shard("y", "x"), shard("z", "z")])
    assert lineage.parents["z"] is None
    assert None in (lineage.parents["x"], lineage.parents["y"])
    for sid in lineage.shards:
        assert len(lineage.ancestors(sid)) < 3


def test_children_sorted_by_start_then_id() -> None:
    lineage = build_lineage(
        [shard("p", None, 1, 5), shard("z", "p", 6), shard("y", "p", 7), shard("x", "p", 6)]
    )
    assert lineage.children["p"] == ("x", "z", "y")


# --- leases_to_create: examples ---------------------------------------------------------


def test_trim_horizon_on_a_fresh_table() -> None:
    new = leases_to_create(SMALL, {}, TRIM_HORIZON)
    assert [n.shard_id for n in new] == ["e", "a", "b", "c", "d"]
    assert {n.checkpoint for n in new} == {TRIM_HORIZON}
    by_id = {n.shard_id: n for n in new}
    assert by_id["a"].parent_shard_ids == frozenset({"t0"})  # trimmed parent still recorded
    assert by_id["e"].parent_shard_ids == frozenset()
    assert by_id["c"].parent_shard_ids == frozenset({"b"})


def test_latest_on_a_fresh_table_takes_only_open_leaves() -> None:
    new = leases_to_create(SMALL, {}, LATEST)
    assert [(n.shard_id, n.checkpoint) for n in new] == [("e", LATEST), ("c", LATEST)]


def test_descendants_of_a_lease_start_at_trim_horizon_with_missing_ancestors() -> None:
    new = leases_to_create(SMALL, {"a": lease("a", "15"), "e": lease("e", "6")}, LATEST)
    assert [(n.shard_id, n.checkpoint) for n in new] == [
        ("b", TRIM_HORIZON),
        ("c", TRIM_HORIZON),
        ("d", TRIM_HORIZON),
    ]


def test_a_closed_leaf_gets_a_lease_only_when_it_would_start_at_trim_horizon() -> None:
    only_d = [shard("d", None, 31, 39)]
    assert leases_to_create(only_d, {}, LATEST) == []
    assert leases_to_create(only_d, {}, TRIM_HORIZON) == [NewLease("d", frozenset(), TRIM_HORIZON)]


def test_a_trimmed_parent_with_a_lease_makes_its_child_a_descendant() -> None:
    new = leases_to_create([shard("c", "gone", 30)], {"gone": lease("gone", SHARD_END)}, LATEST)
    assert new == [NewLease("c", frozenset({"gone"}), TRIM_HORIZON)]


def test_nothing_twice() -> None:
    existing = as_leases(leases_to_create(SMALL, {}, TRIM_HORIZON))
    assert leases_to_create(SMALL, existing, TRIM_HORIZON) == []
    assert leases_to_create(SMALL, existing, LATEST) == []


def test_at_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="AT_TIMESTAMP"):
        leases_to_create(SMALL, {}, "AT_TIMESTAMP")


def test_parents_first_even_when_sequence_numbers_disagree() -> None:
    shards = [shard("child", "parent", 1), shard("parent", None, 99, 100)]
    assert [n.shard_id for n in leases_to_create(shards, {}, TRIM_HORIZON)] == ["parent", "child"]


# --- may_start ---------------------------------------------------------------------------


def test_may_start() -> None:
    child = lease("c", parents=["p"])
    assert may_start(child, {})
    assert may_start(child, {"p": lease("p", SHARD_END)})
    assert not may_start(child, {"p": lease("p", "123")})
    assert not may_start(child, {"p": lease("p", TRIM_HORIZON)})
    assert may_start(lease("root"), {"p": lease("p")})


# --- leases_to_delete: examples ------------------------------------------------------------


def test_finished_parent_goes_once_all_children_started() -> None:
    lineage = build_lineage(SMALL)
    leases = {
        "b": lease("b", SHARD_END, ["a"]),
        "c": lease("c", "31", ["b"]),
        "d": lease("d", TRIM_HORIZON, ["b"]),
    }
    assert leases_to_delete(leases, lineage) == []
    leases["d"] = lease("d", "32", ["b"])
    assert leases_to_delete(leases, lineage) == ["b"]


def test_child_shard_ids_win_over_the_listing() -> None:
    leases = {"b": lease("b", SHARD_END, children=["c", "x"]), "c": lease("c", "31")}
    assert leases_to_delete(leases, build_lineage(SMALL)) == []  # "x" has no lease
    leases["x"] = lease("x", "40")
    assert leases_to_delete(leases, None) == ["b"]


def test_a_lease_naming_it_as_parent_must_have_started_too() -> None:
    # child_shard_ids says only "c"; "x" (trimmed since) still has an unstarted lease.
    leases = {
        "b": lease("b", SHARD_END, children=["c"]),
        "c": lease("c", "31", ["b"]),
        "x": lease("x", TRIM_HORIZON, ["b"]),
    }
    assert leases_to_delete(leases, build_lineage(SMALL)) == []
    leases["x"] = lease("x", "33", ["b"])
    assert leases_to_delete(leases, build_lineage(SMALL)) == ["b"]


def test_top_down_one_generation_at_a_time() -> None:
    lineage = build_lineage(SMALL)
    leases = {
        "a": lease("a", SHARD_END, ["t0"]),
        "b": lease("b", SHARD_END, ["a"]),
        "c": lease("c", "31", ["b"]),
        "d": lease("d", SHARD_END, ["b"]),
    }
    assert leases_to_delete(leases, lineage) == ["a"]
    del leases["a"]
    assert leases_to_delete(leases, lineage) == ["b"]


def test_never_a_finished_lease_without_known_children() -> None:
    leases = {"d": lease("d", SHARD_END, ["b"])}
    assert leases_to_delete(leases, build_lineage(SMALL)) == []
    assert leases_to_delete(leases, None) == []


def test_unfinished_leases_stay() -> None:
    leases = {"b": lease("b", "25", children=["c"]), "c": lease("c", "31")}
    assert leases_to_delete(leases, build_lineage(SMALL)) == []


def test_garbage_of_trimmed_shards() -> None:
    lineage = build_lineage(SMALL)
    leases = {
        "t0": lease("t0", SHARD_END),  # trimmed; its child "a" is listed, unstarted
        "old": lease("old", SHARD_END),  # trimmed, nothing depends on it
        "old2": lease("old2", "77"),  # trimmed but unfinished: the consumer ends it first
        "a": lease("a", TRIM_HORIZON, ["t0"]),
    }
    assert leases_to_delete(leases, lineage) == ["old"]
    leases["a"] = lease("a", "11", ["t0"])
    assert leases_to_delete(leases, lineage) == ["old", "t0"]


def test_no_garbage_collection_without_a_listing() -> None:
    leases = {"old": lease("old", SHARD_END)}
    assert leases_to_delete(leases, None) == []
    assert leases_to_delete(leases, build_lineage([])) == []


def test_a_lease_whose_listed_parent_remains_is_not_garbage() -> None:
    leases = {"gone": lease("gone", SHARD_END, ["e"])}  # parent "e" is listed
    assert leases_to_delete(leases, build_lineage(SMALL)) == []


# --- a random stream model -------------------------------------------------------------------


@dataclasses.dataclass
class Stream:
    """The true shard history: every shard ever, which are still listed, and a clock."""

    shards: dict[str, Shard] = dataclasses.field(default_factory=dict)
    listed: list[str] = dataclasses.field(default_factory=list)
    clock: int = 100

    def tick(self) -> str:
        self.clock += 1
        return str(self.clock)

    def add(self, parent: str | None) -> None:
        sid = f"shard-{len(self.shards):03d}"
        self.shards[sid] = Shard(sid, parent, self.tick())
        self.listed.append(sid)

    def children(self, sid: str) -> list[str]:
        return [s.shard_id for s in self.shards.values() if s.parent_shard_id == sid]

    def parent(self, sid: str) -> str | None:
        return self.shards[sid].parent_shard_id

    def close(self, sid: str) -> None:
        self.shards[sid] = dataclasses.replace(self.shards[sid], ending_sequence_number=self.tick())

    def step(self, data: st.DataObject) -> None:
        """One thing that happens to a stream: a shard closes, gets children, is trimmed."""
        open_ = [s for s in self.listed if self.shards[s].is_open]
        childless = [s for s in self.listed if not self.shards[s].is_open and not self.children(s)]
        trimmable = [
            s for s in self.listed if self.parent(s) not in self.listed and self.children(s)
        ]
        moves = [
            m
            for m, ok in (
                ("close", open_),
                ("split", childless),
                ("trim", trimmable),
                ("root", [1]),
            )
            if ok
        ]
        move = data.draw(st.sampled_from(moves))
        if move == "close":
            sid = data.draw(st.sampled_from(open_))
            self.close(sid)
            if data.draw(st.booleans()):  # a rollover: the child appears at once
                self.add(sid)
        elif move == "split":
            sid = data.draw(st.sampled_from(childless))
            for _ in range(data.draw(st.integers(1, 2))):
                self.add(sid)
        elif move == "trim":
            self.listed.remove(data.draw(st.sampled_from(trimmable)))
        else:
            self.add(data.draw(st.sampled_from([None, "shard-ancient"])))

    def listing(self, data: st.DataObject) -> list[Shard]:
        """DescribeStream's answer: retained shards, in any order, a parent maybe stale-open."""
        order: list[str] = data.draw(st.permutations(self.listed))
        stale_parents: bool = data.draw(st.booleans())
        shards = []
        for sid in order:
            shard = self.shards[sid]
            if stale_parents and self.children(sid) and data.draw(st.booleans()):
                shard = dataclasses.replace(shard, ending_sequence_number=None)
            shards.append(shard)
        return shards

    def ancestors(self, sid: str) -> list[str]:
        chain = []
        parent = self.parent(sid)
        while parent is not None and parent in self.shards:
            chain.append(parent)
            parent = self.parent(parent)
        return chain


def random_stream(data: st.DataObject, max_steps: int = 25) -> Stream:
    stream = Stream()
    for _ in range(data.draw(st.integers(1, 3))):
        stream.add(data.draw(st.sampled_from([None, "shard-ancient"])))
    for _ in range(data.draw(st.integers(0, max_steps))):
        stream.step(data)
    return stream


def assert_parents_first(new: list[NewLease], existing: Iterable[str] = ()) -> None:
    seen = set(existing)
    ids = [n.shard_id for n in new]
    assert len(ids) == len(set(ids))
    planned = set(ids)
    for n in new:
        for parent in n.parent_shard_ids:
            assert parent not in planned or parent in seen, (
                f"{n.shard_id} before its parent {parent}"
            )
        seen.add(n.shard_id)


# --- properties: creation ----------------------------------------------------------------------


@given(st.data())
def test_trim_horizon_fresh_table_leases_every_retained_shard_once(data: st.DataObject) -> None:
    stream = random_stream(data)
    listing = stream.listing(data)
    new = leases_to_create(listing, {}, TRIM_HORIZON)
    assert sorted(n.shard_id for n in new) == sorted(stream.listed)
    assert {n.checkpoint for n in new} <= {TRIM_HORIZON}
    for n in new:
        parent = stream.parent(n.shard_id)
        assert n.parent_shard_ids == (frozenset() if parent is None else frozenset({parent}))
    assert_parents_first(new)
    assert leases_to_create(listing, as_leases(new), TRIM_HORIZON) == []


@given(st.data())
def test_latest_fresh_table_leases_only_open_leaves(data: st.DataObject) -> None:
    stream = random_stream(data)
    listing = stream.listing(data)
    new = leases_to_create(listing, {}, LATEST)
    open_leaves = {
        s
        for s in stream.listed
        if stream.shards[s].is_open and not (set(stream.children(s)) & set(stream.listed))
    }
    assert {n.shard_id for n in new} == open_leaves
    assert {n.checkpoint for n in new} <= {LATEST}
    assert leases_to_create(listing, as_leases(new), LATEST) == []


@given(st.data())
def test_creation_is_idempotent_and_ordered_with_existing_leases(data: st.DataObject) -> None:
    stream = random_stream(data)
    known = data.draw(st.lists(st.sampled_from(sorted(stream.shards)), unique=True))
    existing = {
        k: lease(k, data.draw(st.sampled_from([TRIM_HORIZON, "1", SHARD_END]))) for k in known
    }
    position = data.draw(st.sampled_from([TRIM_HORIZON, LATEST]))
    listing = stream.listing(data)
    new = leases_to_create(listing, existing, position)
    assert not {n.shard_id for n in new} & set(existing)
    assert {n.shard_id for n in new} <= set(stream.listed)
    assert_parents_first(new, existing)
    for n in new:
        if descends_from_a_lease(stream, n.shard_id, existing):
            assert n.checkpoint == TRIM_HORIZON
    assert leases_to_create(listing, {**existing, **as_leases(new)}, position) == []


def descends_from_a_lease(stream: Stream, sid: str, existing: Container[str | None]) -> bool:
    """A listed ancestor has a lease, or the trimmed parent of the oldest listed one has.

    (A leased ancestor further up, past trimmed shards without leases, is unknowable.)
    """
    chain = [sid]
    while (parent := stream.parent(chain[-1])) in stream.listed:
        chain.append(parent)
    return any(s in existing for s in chain[1:]) or stream.parent(chain[-1]) in existing


# --- properties: a fleet consuming a changing stream --------------------------------------------


@dataclasses.dataclass
class Fleet:
    """The lease table as seen by a fleet that follows shardline's rules."""

    stream: Stream
    position: str
    leases: dict[str, Lease] = dataclasses.field(default_factory=dict)
    ever_leased: set[str] = dataclasses.field(default_factory=set)
    ever_finished: set[str] = dataclasses.field(default_factory=set)

    def sync(self, data: st.DataObject) -> None:
        listing = self.stream.listing(data)
        new = leases_to_create(listing, self.leases, self.position)
        for n in new:
            assert n.shard_id not in self.leases
            self.put(lease(n.shard_id, n.checkpoint, n.parent_shard_ids))
        assert leases_to_create(listing, self.leases, self.position) == []
        for key in leases_to_delete(self.leases, build_lineage(listing)):
            self.check_deletable(key)
            del self.leases[key]

    def put(self, new: Lease) -> None:
        self.leases[new.key] = new
        self.ever_leased.add(new.key)

    def check_deletable(self, key: str) -> None:
        assert self.leases[key].is_finished
        for child in self.stream.children(key):
            if child in self.stream.listed:
                assert child in self.leases, f"deleted {key} before its child {child} had a lease"
            if child in self.leases:
                assert self.leases[child].has_started, f"deleted {key} before {child} started"

    def startable(self) -> list[str]:
        return sorted(
            k for k, v in self.leases.items() if not v.has_started and may_start(v, self.leases)
        )

    def finishable(self) -> list[str]:
        return sorted(
            k
            for k, v in self.leases.items()
            if v.has_started and not v.is_finished and not self.stream.shards[k].is_open
        )

    def start(self, key: str) -> None:
        """Start a lease, checking order against every ancestor whose records still exist.

        Those are the listed ancestors and, listed or not, the direct parent (the lease
        names it). An ancestor beyond a trimmed, never-leased shard is unknowable, and
        trimmed, so none of its records are left to be read out of order.
        """
        parent = self.stream.parent(key)
        ancestors = [
            a for a in self.stream.ancestors(key) if a in self.stream.listed or a == parent
        ]
        for ancestor in ancestors:
            if ancestor in self.ever_leased:
                assert ancestor in self.ever_finished, (
                    f"{key} started before ancestor {ancestor} ended"
                )
        self.leases[key] = dataclasses.replace(self.leases[key], checkpoint=self.stream.tick())

    def finish(self, key: str, data: st.DataObject) -> None:
        """Reach SHARD_END; like the shard-end path, maybe record children and lease them."""
        children = [c for c in self.stream.children(key) if c in self.stream.listed]
        record = bool(children) and data.draw(st.booleans())
        self.leases[key] = dataclasses.replace(
            self.leases[key],
            checkpoint=SHARD_END,
            child_shard_ids=frozenset(children) if record else frozenset(),
        )
        self.ever_finished.add(key)
        if record:
            for child in children:
                if child not in self.leases:
                    self.put(lease(child, TRIM_HORIZON, [key]))

    def act(self, data: st.DataObject) -> None:
        moves = ["grow", "sync"]
        if self.startable():
            moves.append("start")
        if self.finishable():
            moves.append("finish")
        move = data.draw(st.sampled_from(moves))
        if move == "grow":
            self.stream.step(data)
        elif move == "sync":
            self.sync(data)
        elif move == "start":
            self.start(data.draw(st.sampled_from(self.startable())))
        else:
            self.finish(data.draw(st.sampled_from(self.finishable())), data)

    def drain(self, data: st.DataObject) -> None:
        """No more stream changes: run every possible step until nothing changes."""
        for _ in range(4 * len(self.stream.shards) + 4):
            before = dict(self.leases)
            self.sync(data)
            for key in self.startable():
                self.start(key)
            for key in self.finishable():
                self.finish(key, data)
            if self.leases == before:
                return
        raise AssertionError("the fleet never settled")


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from([TRIM_HORIZON, LATEST]))
def test_fleet_never_starts_a_child_early_nor_deletes_a_needed_parent(
    data: st.DataObject, position: str
) -> None:
    stream = random_stream(data, max_steps=5)
    fleet = Fleet(stream, position)
    fleet.sync(data)
    for _ in range(data.draw(st.integers(0, 80))):
        fleet.act(data)
    fleet.drain(data)
    # Liveness: nothing is stuck. Every lease has started; every closed shard's is done;
    # what remains finished is a shard with no children (nothing could unblock on it).
    for key, value in fleet.leases.items():
        assert value.has_started, f"{key} never started"
        if not stream.shards[key].is_open:
            assert value.is_finished
        if value.is_finished:
            assert not [c for c in stream.children(key) if c in stream.listed], (
                f"{key} never cleaned up"
            )
    # Every listed open leaf is leased and running.
    for sid in stream.listed:
        if stream.shards[sid].is_open:
            assert sid in fleet.leases
