"""The lease table: KCL-compatible items and KCL's conditional writes.

Every write that changes ownership or progress is conditional on ``leaseCounter``, the
fence: a worker whose in-memory counter is stale can neither renew nor checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from shardline.aws.client import AwsJsonClient
from shardline.errors import (
    ConditionalCheckFailedError,
    LeaseTableError,
    ResourceInUseError,
    ResourceNotFoundError,
)
from shardline.leases import items as f
from shardline.leases.model import Lease

log = logging.getLogger("shardline.leases")

_ACTIVE_STATES = ("ACTIVE", "UPDATING")


class LeaseTable:
    """One KCL lease table in DynamoDB."""

    def __init__(self, dynamodb: AwsJsonClient, table_name: str) -> None:
        self.dynamodb = dynamodb
        self.name = table_name

    # --- table lifecycle -------------------------------------------------------------

    async def ensure_exists(self, *, timeout: float = 600.0, poll: float = 1.0) -> None:
        """Create the table (on-demand billing) unless it exists, then wait for ACTIVE.

        An existing table must have KCL's key schema (one S hash key ``leaseKey``).
        """
        description = await self._describe()
        if description is None:
            await self._create()
            description = await self._describe()
        waited = 0.0
        while description is None or description.get("TableStatus") not in _ACTIVE_STATES:
            if waited >= timeout:
                raise LeaseTableError(
                    f"lease table {self.name} did not become ACTIVE in {timeout}s"
                )
            await asyncio.sleep(poll)
            waited += poll
            description = await self._describe()
        self._check_schema(description)

    async def exists(self) -> bool:
        """Whether the lease table exists (DescribeTable)."""
        return await self._describe() is not None

    async def _describe(self) -> dict[str, Any] | None:
        try:
            answer = await self.dynamodb.call("DescribeTable", {"TableName": self.name})
        except ResourceNotFoundError:
            return None
        table: dict[str, Any] = answer["Table"]
        return table

    async def _create(self) -> None:
        log.info("creating lease table %s (on-demand billing)", self.name)
        try:
            await self.dynamodb.call(
                "CreateTable",
                {
                    "TableName": self.name,
                    "KeySchema": [{"AttributeName": f.KEY, "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": f.KEY, "AttributeType": "S"}],
                    "BillingMode": "PAY_PER_REQUEST",
                },
            )
        except ResourceInUseError:
            pass  # another worker created it first

    def _check_schema(self, description: dict[str, Any]) -> None:
        key_schema = description.get("KeySchema", [])
        definitions = {
            d["AttributeName"]: d["AttributeType"]
            for d in description.get("AttributeDefinitions", [])
        }
        if (
            key_schema != [{"AttributeName": f.KEY, "KeyType": "HASH"}]
            or definitions.get(f.KEY) != "S"
        ):
            raise LeaseTableError(
                f"table {self.name} exists but is not a KCL lease table (its key must be "
                "the string hash key 'leaseKey'); choose another --application or --lease-table"
            )

    # --- reads -----------------------------------------------------------------------

    async def list_leases(self) -> list[Lease]:
        """Every lease, by a paginated consistent Scan; foreign entities are skipped."""
        leases: list[Lease] = []
        params: dict[str, Any] = {"TableName": self.name, "ConsistentRead": True}
        while True:
            page = await self.dynamodb.call("Scan", params)
            leases.extend(f.lease_from_item(i) for i in page.get("Items", []) if f.is_lease_item(i))
            last = page.get("LastEvaluatedKey")
            if not last:
                return leases
            params = {**params, "ExclusiveStartKey": last}

    async def get_lease(self, key: str) -> Lease | None:
        """One lease, read consistently; None when there is no such lease item."""
        answer = await self.dynamodb.call(
            "GetItem", {"TableName": self.name, "Key": f.key_of(key), "ConsistentRead": True}
        )
        item = answer.get("Item")
        return f.lease_from_item(item) if item and f.is_lease_item(item) else None

    # --- writes ----------------------------------------------------------------------

    async def create_if_not_exists(self, lease: Lease) -> bool:
        """KCL's createLeaseIfNotExists: False when the lease was already there."""
        try:
            await self.dynamodb.call(
                "PutItem",
                {
                    "TableName": self.name,
                    "Item": f.item_from_lease(lease),
                    "ConditionExpression": "attribute_not_exists(#k)",
                    "ExpressionAttributeNames": {"#k": f.KEY},
                },
            )
        except ConditionalCheckFailedError:
            return False
        return True

    async def renew(self, lease: Lease) -> Lease | None:
        """counter := counter + 1 if unchanged; None when the lease was lost.

        The lease is returned as stored after the write, so a handoff request shows.
        As KCL does, a failed condition is checked by re-reading: if the item shows us as
        owner with exactly counter + 1, our earlier attempt had landed (a retried request).
        """
        try:
            answer = await self._bump(lease, sets={}, return_new=True)
        except ConditionalCheckFailedError:
            current = await self.get_lease(lease.key)
            return current if self._landed(current, lease, lease.actual_owner) else None
        stored = answer.get("Attributes")
        if stored and f.is_lease_item(stored):
            return f.lease_from_item(stored)
        return replace(lease, counter=lease.counter + 1)

    @staticmethod
    def _landed(current: Lease | None, expected: Lease, owner: str | None) -> bool:
        """After a failed condition: did our own earlier (retried) attempt land?"""
        return (
            current is not None
            and current.actual_owner == owner
            and current.counter == expected.counter + 1
        )

    async def take(self, lease: Lease, owner: str) -> Lease | None:
        """Take (or steal) a lease seen with ``lease.counter``; None when someone moved first.

        A pending handoff (``checkpointOwner``) is cleared, as KCL 3's take does.
        """
        switched = lease.actual_owner is not None and lease.actual_owner != owner
        adds = {f.OWNER_SWITCHES: 1} if switched else {}
        try:
            await self._bump(
                lease, sets={f.OWNER: {"S": owner}}, adds=adds, removes=(f.CHECKPOINT_OWNER,)
            )
        except ConditionalCheckFailedError:
            current = await self.get_lease(lease.key)
            return current if self._landed(current, lease, owner) else None
        return replace(
            lease,
            owner=owner,
            counter=lease.counter + 1,
            owner_switches=lease.owner_switches + (1 if switched else 0),
            checkpoint_owner=None,
        )

    # --- graceful handoff (see leases/handoff.py) --------------------------------------

    async def request_handoff(self, lease: Lease, next_owner: str) -> Lease | None:
        """Ask the owner of ``lease`` to hand it to ``next_owner`` (KCL 3's
        initiateGracefulLeaseHandoff): owner := next, checkpointOwner := current owner,
        counter unchanged. None when the lease moved or a handoff is already pending."""
        current_owner = lease.owner or ""
        try:
            await self.dynamodb.call(
                "UpdateItem",
                {
                    "TableName": self.name,
                    "Key": f.key_of(lease.key),
                    "UpdateExpression": "SET #o = :next, #co = :current",
                    "ConditionExpression": (
                        "#c = :expected AND #o = :current AND attribute_not_exists(#co)"
                    ),
                    "ExpressionAttributeNames": {
                        "#c": f.COUNTER,
                        "#o": f.OWNER,
                        "#co": f.CHECKPOINT_OWNER,
                    },
                    "ExpressionAttributeValues": {
                        ":expected": {"N": str(lease.counter)},
                        ":next": {"S": next_owner},
                        ":current": {"S": current_owner},
                    },
                },
            )
        except ConditionalCheckFailedError:
            current = await self.get_lease(lease.key)
            landed = (
                current is not None
                and current.owner == next_owner
                and current.checkpoint_owner == current_owner
                and current.counter == lease.counter
            )
            return current if landed else None
        return replace(lease, owner=next_owner, checkpoint_owner=current_owner)

    async def hand_over(self, lease: Lease, *, attempts: int = 3) -> bool:
        """Complete a handoff asked of ``lease.actual_owner`` (KCL 3's assignLease to the
        next owner): checkpointOwner removed, counter + 1, owner switches + 1.

        A failed condition is checked by re-reading: a retried request that had landed
        counts as done; a condition that holds after all is tried again.
        """
        me = lease.actual_owner
        condition = ("#co = :me", {"#co": f.CHECKPOINT_OWNER}, {":me": {"S": me}})
        for _ in range(attempts):
            try:
                await self._bump(
                    lease,
                    sets={},
                    adds={f.OWNER_SWITCHES: 1},
                    removes=(f.CHECKPOINT_OWNER,),
                    condition=condition,
                )
                return True
            except ConditionalCheckFailedError:
                current = await self.get_lease(lease.key)
            if current is None:
                return False
            if current.checkpoint_owner is None and current.counter == lease.counter + 1:
                return current.owner != me  # landed (not withdrawn and bumped by someone)
            if current.checkpoint_owner != me or current.counter != lease.counter:
                return False
        return False

    async def cancel_handoff(self, lease: Lease, me: str) -> bool:
        """The next owner withdraws its request: the current owner is owner again."""
        try:
            await self.dynamodb.call(
                "UpdateItem",
                {
                    "TableName": self.name,
                    "Key": f.key_of(lease.key),
                    "UpdateExpression": "SET #o = #co REMOVE #co",
                    "ConditionExpression": "#o = :me AND attribute_exists(#co)",
                    "ExpressionAttributeNames": {"#o": f.OWNER, "#co": f.CHECKPOINT_OWNER},
                    "ExpressionAttributeValues": {":me": {"S": me}},
                },
            )
        except ConditionalCheckFailedError:
            return False
        return True

    async def evict(self, lease: Lease) -> bool:
        """Release a lease we own: counter + 1 and no owner, so others take it at once.

        While a handoff away from us is pending, ``leaseOwner`` names the next owner and
        this fails; :meth:`hand_over` is the release then."""
        try:
            await self.dynamodb.call(
                "UpdateItem",
                {
                    "TableName": self.name,
                    "Key": f.key_of(lease.key),
                    "UpdateExpression": "SET #c = #c + :one REMOVE #o",
                    "ConditionExpression": "#o = :owner",
                    "ExpressionAttributeNames": {"#c": f.COUNTER, "#o": f.OWNER},
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":owner": {"S": lease.actual_owner or ""},
                    },
                },
            )
        except ConditionalCheckFailedError:
            return False
        return True

    async def checkpoint(
        self,
        lease: Lease,
        checkpoint: str,
        sub: int,
        child_shard_ids: frozenset[str] | None = None,
    ) -> Lease:
        """KCL's updateLease for a checkpoint; raises ConditionalCheckFailedError if fenced."""
        sets: dict[str, dict[str, Any]] = {
            f.CHECKPOINT: {"S": checkpoint},
            f.CHECKPOINT_SUB: {"N": str(sub)},
            f.OWNER_SWITCHES: {"N": "0"},
        }
        if child_shard_ids:
            sets[f.CHILDREN] = {"SS": sorted(child_shard_ids)}
        try:
            await self._bump(lease, sets=sets, removes=(f.PENDING,))
        except ConditionalCheckFailedError:
            current = await self.get_lease(lease.key)
            if not (
                self._landed(current, lease, lease.actual_owner)
                and current
                and (current.checkpoint == checkpoint)
            ):
                raise
        return replace(
            lease,
            counter=lease.counter + 1,
            checkpoint=checkpoint,
            checkpoint_sub=sub,
            owner_switches=0,
            child_shard_ids=child_shard_ids or lease.child_shard_ids,
            pending_checkpoint=None,
        )

    async def delete(self, key: str) -> None:
        """Delete a lease item, unconditionally."""
        await self.dynamodb.call("DeleteItem", {"TableName": self.name, "Key": f.key_of(key)})

    async def _bump(
        self,
        lease: Lease,
        *,
        sets: dict[str, dict[str, Any]],
        adds: dict[str, int] | None = None,
        removes: tuple[str, ...] = (),
        condition: tuple[str, dict[str, str], dict[str, dict[str, Any]]] | None = None,
        return_new: bool = False,
    ) -> dict[str, Any]:
        """One UpdateItem: counter := expected + 1 plus ``sets``, conditional on the counter
        (and on ``condition``: an expression with its names and values)."""
        names = {"#c": f.COUNTER}
        values: dict[str, dict[str, Any]] = {
            ":expected": {"N": str(lease.counter)},
            ":next": {"N": str(lease.counter + 1)},
        }
        set_parts = ["#c = :next"]
        for i, (name, value) in enumerate(sets.items()):
            names[f"#s{i}"] = name
            values[f":s{i}"] = value
            set_parts.append(f"#s{i} = :s{i}")
        for i, (name, amount) in enumerate((adds or {}).items()):
            names[f"#a{i}"] = name
            values[f":a{i}"] = {"N": str(amount)}
            set_parts.append(f"#a{i} = if_not_exists(#a{i}, :zero) + :a{i}")
            values[":zero"] = {"N": "0"}
        expression = "SET " + ", ".join(set_parts)
        if removes:
            for i, name in enumerate(removes):
                names[f"#r{i}"] = name
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
        condition_expression = "#c = :expected"
        if condition is not None:
            condition_expression += f" AND {condition[0]}"
            names.update(condition[1])
            values.update(condition[2])
        params: dict[str, Any] = {
            "TableName": self.name,
            "Key": f.key_of(lease.key),
            "UpdateExpression": expression,
            "ConditionExpression": condition_expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if return_new:
            params["ReturnValues"] = "ALL_NEW"
        answer: dict[str, Any] = await self.dynamodb.call("UpdateItem", params)
        return answer
