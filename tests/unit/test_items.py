from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shardline.leases.items import Item, is_lease_item, item_from_lease, lease_from_item
from shardline.leases.model import Lease

ids = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=20)


@given(
    key=ids,
    owner=st.none() | ids,
    counter=st.integers(0, 10**9),
    checkpoint=st.sampled_from(["TRIM_HORIZON", "LATEST", "SHARD_END", "1234567890123456789012"]),
    parents=st.frozensets(ids, max_size=2),
    children=st.frozensets(ids, max_size=2),
)
def test_round_trip(
    key: str,
    owner: str | None,
    counter: int,
    checkpoint: str,
    parents: frozenset[str],
    children: frozenset[str],
) -> None:
    lease = Lease(
        key=key,
        owner=owner,
        counter=counter,
        checkpoint=checkpoint,
        parent_shard_ids=parents,
        child_shard_ids=children,
    )
    assert lease_from_item(item_from_lease(lease)) == lease


def test_reads_an_item_written_by_kcl_1x() -> None:
    item: Item = {
        "leaseKey": {"S": "shardId-00000001700000000000-abcdef12"},
        "leaseOwner": {"S": "worker-1"},
        "leaseCounter": {"N": "42"},
        "checkpoint": {"S": "49590338271490256608559692538361571095921575989136588898"},
        "checkpointSubSequenceNumber": {"N": "0"},
        "ownerSwitchesSinceCheckpoint": {"N": "1"},
        "parentShardId": {"SS": ["shardId-00000001690000000000-00000000"]},
    }
    lease = lease_from_item(item)
    assert lease.owner == "worker-1" and lease.counter == 42 and lease.owner_switches == 1
    assert lease.parent_shard_ids == {"shardId-00000001690000000000-00000000"}
    assert lease.child_shard_ids == frozenset()


def test_skips_kcl_35_entities_that_are_not_leases() -> None:
    assert is_lease_item({"leaseKey": {"S": "x"}})
    assert is_lease_item({"leaseKey": {"S": "x"}, "entityType": {"S": "LEASE"}})
    assert not is_lease_item({"leaseKey": {"S": "w"}, "entityType": {"S": "WORKER_METRIC_STATS"}})
