"""The PostgreSQL sink end to end: local stack over HTTP, a real PostgreSQL server."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from shardline.sinks.postgres import PostgresSink
from tests.integration.support import create_stream_table, dynamodb, unique
from tests.sinks.support import RunningSinks, postgres_items, source_items, wait_for

pytestmark = pytest.mark.integration


def write_changes(endpoint_url: str, table: str, keys: int, rounds: int) -> None:
    client = dynamodb(endpoint_url)
    for round_ in range(rounds):
        for i in range(keys):
            item = {
                "pk": {"S": f"k{i:03d}"},
                "round": {"N": str(round_)},
                "price": {"N": "12.50"},
                "tags": {"SS": ["b", "a"]},
                "nested": {"M": {"big": {"N": "12345678901234567890.123456789"}}},
            }
            client.put_item(TableName=table, Item=item)
        if round_ % 2 == 1:
            client.delete_item(TableName=table, Key={"pk": {"S": f"k{round_:03d}"}})


async def test_state_mode_equals_the_source(local_stack: Any, pg_dsn: str) -> None:
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    write_changes(local_stack.endpoint_url, table, keys=20, rounds=4)
    sink = PostgresSink(pg_dsn, table="orders")
    async with RunningSinks(local_stack, table, [sink]):
        expected = source_items(local_stack.endpoint_url, table)
        await wait_for(
            lambda: postgres_items(pg_dsn, "orders") == expected, 60, "the replica to match"
        )
    assert len(expected) == 19  # k001 deleted then written again, k003 deleted last
    with psycopg.connect(pg_dsn) as conn:
        tombstones = conn.execute("SELECT pk FROM orders_tombstones ORDER BY pk").fetchall()
        seqs = conn.execute("SELECT min(_seq) FROM orders").fetchone()
    assert [t[0] for t in tombstones] == ["k003"]  # a batch keeps the last change per key
    assert seqs is not None and seqs[0] > 0
    doc = postgres_items(pg_dsn, "orders")["k000"]
    assert doc["tags"] == ["a", "b"]
    assert str(doc["nested"]["big"]) == "12345678901234567890.123456789"


async def test_changelog_mode_appends_every_change_once(local_stack: Any, pg_dsn: str) -> None:
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    write_changes(local_stack.endpoint_url, table, keys=5, rounds=2)
    sink = PostgresSink(pg_dsn, table="changes", mode="changelog")
    expected_changes = 5 * 2 + 1

    def count() -> int:
        with psycopg.connect(pg_dsn) as conn:
            try:
                row = conn.execute("SELECT count(*) FROM changes").fetchone()
            except psycopg.errors.UndefinedTable:
                return 0
        return int(row[0]) if row else 0

    async with RunningSinks(local_stack, table, [sink]):
        await wait_for(lambda: count() == expected_changes, 60, "every change in the changelog")
    with psycopg.connect(pg_dsn) as conn:
        events = conn.execute(
            "SELECT _event_name, count(*) FROM changes GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert events == [("INSERT", 5), ("MODIFY", 5), ("REMOVE", 1)]
