"""Never older over newer in PostgreSQL: replays, tombstones, snapshot rows, random batches.

No stream here: the tests start a :class:`PostgresSink` with a context they build and hand
it :class:`StreamRecord` batches, as the delivery path would, replays included.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardline.sinks.base import KeyAttribute, SinkContext
from shardline.sinks.postgres import PostgresSink
from tests.sinks.guard_support import SCHEMAS, change, snapshot

pytestmark = pytest.mark.integration

_tables = itertools.count()


def context(schema: Sequence[KeyAttribute]) -> SinkContext:
    return SinkContext(
        table="Source",
        stream_arn="arn:aws:dynamodb:us-east-1:000000000000:table/Source/stream/x",
        key_schema=tuple(schema),
        application="app",
        stream_view_type="NEW_AND_OLD_IMAGES",
    )


async def started(dsn: str, schema: Sequence[KeyAttribute], **options: Any) -> PostgresSink:
    sink = PostgresSink(dsn, table=f"t{next(_tables)}", pool_size=1, **options)
    await sink.start(context(schema))
    return sink


def state(dsn: str, sink: PostgresSink) -> dict[str, tuple[int, int]]:
    """name -> (value, sequence number) of every row."""
    assert sink.layout is not None
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"SELECT _item->>'name', (_item->>'value')::int, _seq FROM \"{sink.layout.table}\""
        ).fetchall()
    return {name: (value, int(seq)) for name, value, seq in rows}


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(params=list(SCHEMAS))
def schema(request: pytest.FixtureRequest) -> tuple[KeyAttribute, ...]:
    return SCHEMAS[request.param]


async def test_an_older_modify_replayed_does_not_move_the_row_back(
    pg_dsn: str, schema: tuple[KeyAttribute, ...]
) -> None:
    sink = await started(pg_dsn, schema)
    try:
        await sink.write_changes(
            [change(schema, 1, "a", "INSERT", 1), change(schema, 2, "a", value=2)]
        )
        await sink.write_changes([change(schema, 3, "a", value=3)])
        await sink.write_changes([change(schema, 2, "a", value=2)])  # replay, one at a time
        await sink.write_changes([change(schema, 1, "a", "INSERT", 1)])
        assert state(pg_dsn, sink) == {"a": (3, 3)}
    finally:
        await sink.close()


async def test_a_replayed_insert_does_not_bring_a_removed_item_back(
    pg_dsn: str, schema: tuple[KeyAttribute, ...]
) -> None:
    sink = await started(pg_dsn, schema)
    try:
        await sink.write_changes(
            [change(schema, 1, "a", "INSERT", 1), change(schema, 2, "b", "INSERT")]
        )
        await sink.write_changes([change(schema, 3, "a", "REMOVE")])
        await sink.write_changes([change(schema, 1, "a", "INSERT", 1)])
        await sink.write_changes(
            [change(schema, 1, "a", "INSERT", 1), change(schema, 2, "b", "INSERT")]
        )
        assert state(pg_dsn, sink) == {"b": (0, 2)}
        await sink.write_changes([change(schema, 4, "a", "INSERT", 4)])  # a newer insert does
        assert state(pg_dsn, sink) == {"a": (4, 4), "b": (0, 2)}
    finally:
        await sink.close()


async def test_snapshot_rows_never_replace_a_change_nor_resurrect_a_key(
    pg_dsn: str, schema: tuple[KeyAttribute, ...]
) -> None:
    sink = await started(pg_dsn, schema)
    try:
        await sink.write_changes(
            [change(schema, 5, "a", value=5), change(schema, 6, "gone", "REMOVE")]
        )
        await sink.write_snapshot(
            [
                snapshot(schema, "a", 99, 0),
                snapshot(schema, "gone", 99, 1),
                snapshot(schema, "new", 7, 2),
            ]
        )
        assert state(pg_dsn, sink) == {"a": (5, 5), "new": (7, 0)}
        await sink.write_snapshot([snapshot(schema, "new", 8, 2)])  # a page written again
        assert state(pg_dsn, sink) == {"a": (5, 5), "new": (7, 0)}
        await sink.write_changes([change(schema, 1, "new", "MODIFY", 1)])  # any change is newer
        assert state(pg_dsn, sink) == {"a": (5, 5), "new": (1, 1)}
    finally:
        await sink.close()


async def test_the_same_batch_twice_leaves_the_table_the_same(
    pg_dsn: str, schema: tuple[KeyAttribute, ...]
) -> None:
    sink = await started(pg_dsn, schema)
    batch = [
        change(schema, 1, "a", "INSERT", 1),
        change(schema, 2, "b", "INSERT", 2),
        change(schema, 3, "a", "MODIFY", 3),
        change(schema, 4, "b", "REMOVE"),
        change(schema, 5, "c", "INSERT", 5),
    ]
    try:
        await sink.write_changes(batch)
        first = state(pg_dsn, sink)
        await sink.write_changes(batch)
        assert state(pg_dsn, sink) == first == {"a": (3, 3), "c": (5, 5)}
    finally:
        await sink.close()


async def test_changelog_replay_adds_nothing(pg_dsn: str, schema: tuple[KeyAttribute, ...]) -> None:
    sink = await started(pg_dsn, schema, mode="changelog")
    batch = [
        change(schema, n, "ab"[n % 2], ("INSERT", "MODIFY", "REMOVE")[n % 3], n)
        for n in range(1, 8)
    ]
    try:
        await sink.write_changes(batch)
        await sink.write_changes(batch[2:])
        await sink.write_snapshot([snapshot(schema, "a", 1, 0), snapshot(schema, "b", 1, 1)])
        await sink.write_snapshot([snapshot(schema, "b", 1, 1)])
        assert sink.layout is not None
        assert count(pg_dsn, sink.layout.table) == 7 + 2
    finally:
        await sink.close()


# --- random changes, random batches, random replays ------------------------------------------

_events = st.sampled_from(["INSERT", "MODIFY", "REMOVE"])
_changes = st.lists(st.tuples(st.sampled_from("abcd"), _events), min_size=1, max_size=25)
_deliveries = st.lists(st.tuples(st.integers(1, 6), st.integers(0, 8)), max_size=12)


def once_in_order(changes: list[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    expected: dict[str, tuple[int, int]] = {}
    for seq, (name, event) in enumerate(changes, start=1):
        if event == "REMOVE":
            expected.pop(name, None)
        else:
            expected[name] = (seq, seq)
    return expected


def batches(n: int, deliveries: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ranges delivered: forward by ``advance``, then back by ``back`` (a replay)."""
    ranges, position = [], 0
    for advance, back in deliveries:
        end = min(n, position + advance)
        if end > position:
            ranges.append((position, end))
        position = max(0, end - back)
    if position < n:
        ranges.append((position, n))
    return ranges


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=_changes, deliveries=_deliveries, name=st.sampled_from(list(SCHEMAS)))
def test_random_batches_and_replays_end_as_once_in_order(
    pg_dsn: str, changes: list[tuple[str, str]], deliveries: list[tuple[int, int]], name: str
) -> None:
    schema = SCHEMAS[name]
    records = [
        change(schema, seq, key, event, seq) for seq, (key, event) in enumerate(changes, start=1)
    ]

    async def apply() -> dict[str, tuple[int, int]]:
        sink = await started(pg_dsn, schema)
        try:
            for start, end in batches(len(records), deliveries):
                await sink.write_changes(records[start:end])
            return state(pg_dsn, sink)
        finally:
            await sink.close()

    assert asyncio.run(apply()) == once_in_order(changes)
