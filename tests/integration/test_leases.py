"""The lease table and coordinator against the local stack: KCL items and fencing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.errors import LeaseTableError, ShutdownError
from shardline.leases.coordinator import CoordinatorSettings, LeaseCoordinator
from shardline.leases.model import Lease
from shardline.leases.table import LeaseTable
from tests.integration.support import dynamodb, unique

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(local_stack: Any) -> AsyncIterator[AwsJsonClient]:
    aws = AwsJsonClient.create("dynamodb", AwsSettings(endpoint_url=local_stack.endpoint_url))
    yield aws
    await aws.close()


@pytest.fixture
async def table(client: AwsJsonClient) -> LeaseTable:
    leases = LeaseTable(client, unique("leases"))
    await leases.ensure_exists()
    return leases


def coordinator(table: LeaseTable, worker: str, acquired: list[str], lost: list[str]) -> Any:
    async def on_acquired(lease: Lease, token: str) -> None:
        acquired.append(lease.key)

    async def on_lost(key: str) -> None:
        lost.append(key)

    settings = CoordinatorSettings(
        worker_id=worker, failover_time=3.0, renew_interval=1.0, take_interval=0.5
    )
    return LeaseCoordinator(table, settings, on_acquired=on_acquired, on_lost=on_lost)


async def test_table_is_created_with_kcl_schema_and_on_demand(
    local_stack: Any, table: LeaseTable
) -> None:
    description = dynamodb(local_stack.endpoint_url).describe_table(TableName=table.name)["Table"]
    assert description["KeySchema"] == [{"AttributeName": "leaseKey", "KeyType": "HASH"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


async def test_items_have_kcl_attribute_names_and_types(
    local_stack: Any, table: LeaseTable
) -> None:
    lease = Lease(key="shardId-1", parent_shard_ids=frozenset({"shardId-0"}))
    assert await table.create_if_not_exists(lease)
    assert not await table.create_if_not_exists(lease)
    item = dynamodb(local_stack.endpoint_url).get_item(
        TableName=table.name, Key={"leaseKey": {"S": "shardId-1"}}
    )["Item"]
    assert item == {
        "leaseKey": {"S": "shardId-1"},
        "leaseCounter": {"N": "0"},
        "checkpoint": {"S": "TRIM_HORIZON"},
        "checkpointSubSequenceNumber": {"N": "0"},
        "ownerSwitchesSinceCheckpoint": {"N": "0"},
        "parentShardId": {"SS": ["shardId-0"]},
    }


async def test_stolen_lease_fences_the_old_owner(table: LeaseTable) -> None:
    await table.create_if_not_exists(Lease(key="shard-a"))
    acquired_a: list[str] = []
    lost_a: list[str] = []
    a = coordinator(table, "a", acquired_a, lost_a)
    await a.take_round()
    assert acquired_a == ["shard-a"]
    token = a._held["shard-a"].token
    await a.checkpoint("shard-a", token, "100", 0)

    seen = await table.get_lease("shard-a")
    assert seen is not None and seen.owner == "a"
    stolen = await table.take(seen, "b")
    assert stolen is not None and stolen.owner_switches == 1

    with pytest.raises(ShutdownError):
        await a.checkpoint("shard-a", token, "200", 0)
    assert lost_a == ["shard-a"]
    final = await table.get_lease("shard-a")
    assert final is not None and final.checkpoint == "100" and final.owner == "b"


async def test_renew_fails_after_steal_and_release_hands_over(table: LeaseTable) -> None:
    await table.create_if_not_exists(Lease(key="shard-r"))
    lost: list[str] = []
    a = coordinator(table, "a", [], lost)
    await a.take_round()
    current = await table.get_lease("shard-r")
    assert current is not None
    await table.take(current, "b")
    await a.renew_all()
    assert lost == ["shard-r"]

    b_acquired: list[str] = []
    b = coordinator(table, "b", b_acquired, [])
    await b.start()
    assert b_acquired == ["shard-r"], "a restarted worker with the same id keeps its lease"
    await b.stop(release=True)
    released = await table.get_lease("shard-r")
    assert released is not None and released.owner is None

    c_acquired: list[str] = []
    c = coordinator(table, "c", c_acquired, [])
    await c.take_round()
    assert c_acquired == ["shard-r"], "a released lease is taken at once"
    await c.stop(release=False)


async def test_a_table_that_is_not_a_lease_table_is_refused(
    local_stack: Any, client: AwsJsonClient
) -> None:
    name = unique("not-leases")
    dynamodb(local_stack.endpoint_url).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(LeaseTableError, match="not a KCL lease table"):
        await LeaseTable(client, name).ensure_exists()


async def test_a_renewal_round_keeps_a_bounded_number_of_calls_in_flight(
    table: LeaseTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thousand renewals at once behind a slow endpoint would pass their deadline."""
    from shardline.leases import coordinator as coordination

    keys = [f"shard-{i:03d}" for i in range(coordination.RENEWALS_IN_FLIGHT + 40)]
    for key in keys:
        await table.create_if_not_exists(Lease(key=key))
    a = coordinator(table, "worker-a", [], [])
    await a.take_round()
    assert sorted(a.held_keys()) == keys
    in_flight, most = 0, 0
    real_renew = table.renew

    async def counting_renew(lease: Lease) -> Lease | None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await real_renew(lease)
        finally:
            in_flight -= 1

    monkeypatch.setattr(table, "renew", counting_renew)
    await a.renew_all()
    assert most == coordination.RENEWALS_IN_FLIGHT
    renewed = {lease.key: lease.counter for lease in await table.list_leases()}
    assert all(renewed[key] == 2 for key in keys)  # taken (1), then renewed once
    await a.stop(release=True)
