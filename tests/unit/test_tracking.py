from __future__ import annotations

from shardline.leases.model import SHARD_END, Lease
from shardline.streams.model import Shard
from shardline.streams.tracking import TrackedStream, is_drained, plan_leases


def closed(shard_id: str, parent: str | None = None) -> Shard:
    return Shard(shard_id, parent, "100", "200")


def open_(shard_id: str, parent: str | None = None) -> Shard:
    return Shard(shard_id, parent, "300")


OLD = TrackedStream("arn:old", (closed("shardId-00000000000000001000-aaaaaaaa"),))
NEW = TrackedStream("arn:new", (open_("shardId-00000000000000002000-bbbbbbbb"),))


def test_new_stream_waits_until_the_old_one_is_drained() -> None:
    leases = {"shardId-00000000000000001000-aaaaaaaa": Lease(key=OLD.shards[0].shard_id)}
    assert plan_leases([OLD, NEW], leases, "LATEST") == []
    leases = {OLD.shards[0].shard_id: Lease(key=OLD.shards[0].shard_id, checkpoint=SHARD_END)}
    plan = plan_leases([OLD, NEW], leases, "LATEST")
    assert [(n.shard_id, n.checkpoint) for n in plan] == [
        (NEW.shards[0].shard_id, "TRIM_HORIZON")
    ], "a following stream starts at TRIM_HORIZON even with LATEST"


def test_fresh_table_uses_the_initial_position() -> None:
    plan = plan_leases([NEW], {}, "LATEST")
    assert [(n.shard_id, n.checkpoint) for n in plan] == [(NEW.shards[0].shard_id, "LATEST")]


def test_open_stream_is_never_drained() -> None:
    assert not is_drained(NEW, {}, pending=False)
    assert is_drained(OLD, {}, pending=False)
    assert not is_drained(OLD, {}, pending=True)
