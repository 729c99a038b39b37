from __future__ import annotations

from shardline.leases.model import Lease
from shardline.leases.ownership import shard_creation_ms, tracks_another_stream
from shardline.streams.model import Shard


def shard(ms: int, suffix: str = "aaaaaaaa", parent: str | None = None) -> Shard:
    return Shard(f"shardId-{ms:020d}-{suffix}", parent_shard_id=parent)


def lease(ms: int, suffix: str = "bbbbbbbb") -> Lease:
    return Lease(key=f"shardId-{ms:020d}-{suffix}")


def test_parses_creation_time() -> None:
    assert shard_creation_ms("shardId-00000001700000000000-abcdef12") == 1700000000000
    assert shard_creation_ms("123:stream:1:shardId-1") is None


def test_empty_table_or_shared_shards_are_ours() -> None:
    shards = [shard(1000), shard(2000, "cccccccc", parent=shard(1000).shard_id)]
    assert not tracks_another_stream([], shards)
    assert not tracks_another_stream([Lease(key=shards[1].shard_id)], shards)
    trimmed_parent = Lease(key=shards[0].shard_id)
    assert not tracks_another_stream([trimmed_parent], shards[1:])


def test_leases_of_a_live_other_stream_are_refused() -> None:
    assert tracks_another_stream([lease(5000)], [shard(1000), shard(6000, "dddddddd")])


def test_leases_older_than_everything_listed_are_a_long_stop_not_another_stream() -> None:
    assert not tracks_another_stream([lease(500)], [shard(1000), shard(6000, "dddddddd")])


def test_foreign_key_formats_are_refused() -> None:
    assert tracks_another_stream([Lease(key="not-a-shard")], [shard(1000)])
