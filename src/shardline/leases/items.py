"""Lease <-> DynamoDB item, attribute for attribute as KCL writes them.

Attribute names and types follow KCL's lease serializer: ``leaseKey`` (S, hash key),
``leaseOwner`` (S, absent when unowned), ``leaseCounter`` (N),
``checkpoint`` (S), ``checkpointSubSequenceNumber`` (N),
``ownerSwitchesSinceCheckpoint`` (N), ``parentShardId`` (SS, omitted when empty),
``childShardIds`` (SS, omitted when empty), ``pendingCheckpoint`` (S, optional).
``checkpointOwner`` (S) is KCL 3's graceful-handoff marker, present only while a
handoff is pending: ``leaseOwner`` is then the next owner and ``checkpointOwner`` the
current one. KCL 1.x/2.x readers ignore it.
"""

from __future__ import annotations

from typing import Any

from shardline.leases.model import Lease

Item = dict[str, dict[str, Any]]

KEY = "leaseKey"
OWNER = "leaseOwner"
COUNTER = "leaseCounter"
CHECKPOINT = "checkpoint"
CHECKPOINT_SUB = "checkpointSubSequenceNumber"
OWNER_SWITCHES = "ownerSwitchesSinceCheckpoint"
PARENTS = "parentShardId"
CHILDREN = "childShardIds"
PENDING = "pendingCheckpoint"
CHECKPOINT_OWNER = "checkpointOwner"
ENTITY_TYPE = "entityType"


def is_lease_item(item: Item) -> bool:
    """KCL 3.5 single-table mode stores other entities beside leases; skip them."""
    entity = item.get(ENTITY_TYPE)
    return KEY in item and (entity is None or entity.get("S") == "LEASE")


def lease_from_item(item: Item) -> Lease:
    """Read a lease item; missing sets mean empty, a missing owner means unowned."""
    return Lease(
        key=item[KEY]["S"],
        owner=_string(item, OWNER),
        counter=_number(item, COUNTER),
        checkpoint=_string(item, CHECKPOINT) or "TRIM_HORIZON",
        checkpoint_sub=_number(item, CHECKPOINT_SUB),
        owner_switches=_number(item, OWNER_SWITCHES),
        parent_shard_ids=_string_set(item, PARENTS),
        child_shard_ids=_string_set(item, CHILDREN),
        pending_checkpoint=_string(item, PENDING),
        checkpoint_owner=_string(item, CHECKPOINT_OWNER),
    )


def item_from_lease(lease: Lease) -> Item:
    """The full item KCL's createLeaseIfNotExists writes for a new lease."""
    item: Item = {
        KEY: {"S": lease.key},
        COUNTER: {"N": str(lease.counter)},
        CHECKPOINT: {"S": lease.checkpoint},
        CHECKPOINT_SUB: {"N": str(lease.checkpoint_sub)},
        OWNER_SWITCHES: {"N": str(lease.owner_switches)},
    }
    if lease.owner is not None:
        item[OWNER] = {"S": lease.owner}
    if lease.parent_shard_ids:
        item[PARENTS] = {"SS": sorted(lease.parent_shard_ids)}
    if lease.child_shard_ids:
        item[CHILDREN] = {"SS": sorted(lease.child_shard_ids)}
    if lease.pending_checkpoint is not None:
        item[PENDING] = {"S": lease.pending_checkpoint}
    if lease.checkpoint_owner is not None:
        item[CHECKPOINT_OWNER] = {"S": lease.checkpoint_owner}
    return item


def key_of(lease_key: str) -> Item:
    """The DynamoDB key of the lease item ``lease_key``."""
    return {KEY: {"S": lease_key}}


def _string(item: Item, name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _number(item: Item, name: str) -> int:
    value = item.get(name)
    return 0 if value is None else int(value["N"])


def _string_set(item: Item, name: str) -> frozenset[str]:
    value = item.get(name)
    return frozenset() if value is None else frozenset(value["SS"])
