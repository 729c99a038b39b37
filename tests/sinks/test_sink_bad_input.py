"""Bad input: a one-line SinkError naming the sink (never its password), or the failure path."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from shardline.delivery import DeliveryConfig
from shardline.records import StreamRecord
from shardline.sinks.base import KeyAttribute, SinkContext, SinkError
from shardline.sinks.postgres import PostgresSink
from tests.integration.support import create_stream_table, dynamodb, unique
from tests.sinks.guard_support import change
from tests.sinks.support import RunningSinks, postgres_items, wait_for

pytestmark = pytest.mark.integration

HASH = (KeyAttribute("pk", "S"),)
CONTEXT = SinkContext(
    table="Orders",
    stream_arn="arn:aws:dynamodb:us-east-1:000000000000:table/Orders/stream/x",
    key_schema=HASH,
    application="app",
    stream_view_type="NEW_AND_OLD_IMAGES",
)


def with_password(dsn: str, password: str, port: int | None = None) -> str:
    parts = urlsplit(dsn)
    host = f"{parts.hostname}:{port or parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{host}"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_one_line_naming(error: SinkError, sink: PostgresSink, secret: str) -> None:
    text = str(error)
    assert text.startswith(f"sink {sink.name}: ")
    assert "***" in sink.name
    assert secret not in text
    assert "\n" not in text


async def start_fails(sink: PostgresSink) -> SinkError:
    try:
        with pytest.raises(SinkError) as caught:
            await sink.start(CONTEXT)
    finally:
        await sink.close()
    return caught.value


async def test_an_unreachable_database(pg_dsn: str) -> None:
    sink = PostgresSink(with_password(pg_dsn, "hunter2", closed_port()), table="orders")
    error = await start_fails(sink)
    assert_one_line_naming(error, sink, "hunter2")
    assert "cannot connect" in str(error) and error.retriable
    assert await sink.check(CONTEXT) == [str(error)]


async def test_a_wrong_password(pg_dsn: str) -> None:
    sink = PostgresSink(with_password(pg_dsn, "not-the-secret"), table="orders")
    error = await start_fails(sink)
    assert_one_line_naming(error, sink, "not-the-secret")
    assert "password authentication failed" in str(error)
    assert not error.retriable  # waiting does not mend a password


async def test_a_table_of_the_wrong_shape(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (pk integer PRIMARY KEY, body text)")
    sink = PostgresSink(with_password(pg_dsn, "secret"), table="orders")
    error = await start_fails(sink)
    assert_one_line_naming(error, sink, "secret@")
    assert "table public.orders does not match" in str(error)
    assert "column pk is integer, expected text" in str(error)
    assert "column _item is missing" in str(error)
    assert not error.retriable


async def test_an_item_whose_key_type_does_not_match(pg_dsn: str) -> None:
    sink = PostgresSink(pg_dsn, table="orders")
    await sink.start(CONTEXT)
    try:
        bad = change((KeyAttribute("pk", "N"),), 7, "a", "INSERT", 1)
        with pytest.raises(SinkError, match="key attribute pk is of type N, but the key") as caught:
            await sink.write_changes([change(HASH, 6, "ok", "INSERT"), bad])
        assert not caught.value.retriable and "\n" not in str(caught.value)
        assert str(caught.value).startswith(f"sink {sink.name}: change ")
        assert postgres_items(pg_dsn, "orders") == {}  # the batch is one transaction
    finally:
        await sink.close()


async def test_a_nul_in_a_value(pg_dsn: str) -> None:
    sink = PostgresSink(pg_dsn, table="orders")
    await sink.start(CONTEXT)
    image = {"pk": {"S": "a"}, "note": {"S": "x\x00y"}}
    record = StreamRecord(
        {"eventID": "e", "eventName": "INSERT",
         "dynamodb": {"Keys": {"pk": {"S": "a"}}, "NewImage": image, "SequenceNumber": "7"}},
        "s-1",
    )  # fmt: skip
    try:
        with pytest.raises(SinkError, match="NUL character") as caught:
            await sink.write_changes([record])
        assert not caught.value.retriable and "\n" not in str(caught.value)
        assert str(caught.value).startswith(f"sink {sink.name}: change 7 of shard s-1")
    finally:
        await sink.close()


async def test_a_record_that_cannot_be_written_goes_to_on_failure(
    local_stack: Any, pg_dsn: str, tmp_path: Path
) -> None:
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    client = dynamodb(local_stack.endpoint_url)
    for i in range(8):
        note = "bad\x00value" if i == 5 else f"fine {i}"
        client.put_item(TableName=table, Item={"pk": {"S": f"k{i}"}, "note": {"S": note}})
    failures = tmp_path / "failures"
    delivery = DeliveryConfig(
        batch_size=10,
        maximum_retry_attempts=1,
        bisect_batch_on_function_error=True,
        on_failure=f"file://{failures}",
    )
    sink = PostgresSink(pg_dsn, table="orders")

    def failed_records() -> list[dict[str, Any]]:
        documents = [json.loads(p.read_bytes()) for p in failures.rglob("*.json")]
        return [r for d in documents for r in d["records"]]

    async with RunningSinks(local_stack, table, [sink], delivery=delivery):
        await wait_for(lambda: len(postgres_items(pg_dsn, "orders")) == 7, 60, "the good rows")
        await wait_for(lambda: bool(failed_records()), 60, "the failure document")
    assert sorted(postgres_items(pg_dsn, "orders")) == [f"k{i}" for i in range(8) if i != 5]
    (record,) = failed_records()
    assert record["dynamodb"]["Keys"] == {"pk": {"S": "k5"}}
    (document,) = [json.loads(p.read_bytes()) for p in failures.rglob("*.json")]
    assert "NUL character" in document["error"]["message"]
    assert document["error"]["message"].startswith("sink postgresql://")
