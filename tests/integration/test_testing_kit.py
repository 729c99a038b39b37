"""Testing a processor with shardline.testing: the complete example of docs/testing.md."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from shardline import StreamRecord
from shardline.testing import LocalStreams

pytestmark = pytest.mark.integration  # shardline's own marker; drop it in your project


# The processor under test. In your project it lives in your package and is imported.
class OrderTotals:
    """Keeps the latest total of every order; TTL expiries are archived, not deleted."""

    def __init__(self) -> None:
        self.totals: dict[str, Decimal] = {}
        self.archived: list[str] = []

    def handle(self, records: list[StreamRecord]) -> None:
        for record in records:
            order = record.keys["pk"]
            if record.event_name != "REMOVE":
                self.totals[order] = (record.new_image or {})["total"]
            elif (record.user_identity or {}).get("PrincipalId") == "dynamodb.amazonaws.com":
                self.archived.append(order)  # deleted by TTL
            else:
                self.totals.pop(order, None)  # deleted by a user


@pytest.fixture(scope="session")
def local() -> Iterator[LocalStreams]:
    with LocalStreams.start() as streams:  # the local stack, in-process, on a free port
        yield streams


def test_totals_follow_every_change_across_shards_and_faults(local: LocalStreams) -> None:
    table = local.create_table()  # hash key "pk" (S), stream NEW_AND_OLD_IMAGES
    table.put({"pk": "order-1", "total": 10})
    table.split()  # the shard closes; two children share its keys
    table.put({"pk": "order-1", "total": Decimal("12.50")})
    table.put({"pk": "order-2", "total": 3})
    table.rollover()  # every open shard closes; one child each
    table.delete({"pk": "order-2"})
    table.put({"pk": "order-3", "total": 7})
    table.expire({"pk": "order-3"})  # as DynamoDB's TTL would

    local.faults.throttle("GetRecords", rate=0.3)  # LimitExceededException, 30% of reads
    local.faults.server_error("DescribeStream", count=2)  # two HTTP 500s
    processor = OrderTotals()
    with local.consume(processor.handle, table) as run:  # shardline.Consumer, in a thread
        run.wait_for(lambda: processor.archived == ["order-3"], timeout=60)
    local.faults.clear()

    assert processor.totals == {"order-1": Decimal("12.50"), "order-3": 7}  # 3 kept: archived
    assert run.keys().count("order-1") >= 2  # both versions, in order:
    totals = [(r.new_image or {})["total"] for r in run.records if r.keys["pk"] == "order-1"]
    assert totals[:2] == [10, Decimal("12.50")]
