"""The PostgreSQL sink's SQL and staged rows (pure), and that the SQL fits a real server."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from shardline.records import StreamRecord
from shardline.sinks.base import KeyAttribute, SinkError, SnapshotRow
from shardline.sinks.changes import is_ttl_delete, key_values, last_per_key
from shardline.sinks.postgres import parse_columns, sink_error
from shardline.sinks.postgres_rows import RowBuilder
from shardline.sinks.postgres_sql import Layout, PromotedColumn

HASH = KeyAttribute("pk", "S")
COMPOSITE = (KeyAttribute("pk", "S"), KeyAttribute("sk", "N", "RANGE"))


def record(seq: int, keys: dict[str, Any], event: str = "MODIFY", **extra: Any) -> StreamRecord:
    dynamodb: dict[str, Any] = {"Keys": keys, "SequenceNumber": str(seq), "SizeBytes": 10}
    if event != "REMOVE":
        dynamodb["NewImage"] = {**keys, "v": {"N": str(seq)}}
    raw = {"eventID": f"e{seq}", "eventName": event, "dynamodb": dynamodb, **extra}
    return StreamRecord(raw, "shard-1")


def test_create_statements_match_expected_columns(pg_dsn: str) -> None:
    layouts = [
        Layout("public", "state_t", COMPOSITE, "state", (PromotedColumn("price", "numeric"),)),
        Layout("public", "log_t", (KeyAttribute("id", "B"),), "changelog"),
    ]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for layout in layouts:
            for statement in layout.create_statements():
                conn.execute(statement)
            for table, expected in layout.expected_columns().items():
                rows = conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = %s",
                    (table,),
                ).fetchall()
                have: dict[str, str] = dict(rows)
                have.pop("_written_at", None)
                expected.pop("_written_at", None)
                assert have == expected, table
            conn.execute(layout.create_stage("stage_" + layout.table))
            with conn.cursor() as cursor:
                cursor.execute(layout.merge_statement("stage_" + layout.table))


def test_stage_columns_are_in_copy_order() -> None:
    state = Layout("public", "t", COMPOSITE)
    assert state.stage_columns() == ("pk", "sk", "_item", "_seq", "_event_name", "_changed_at",
                                     "_ttl_delete")  # fmt: skip
    log = Layout("s", "t", (HASH,), "changelog")
    assert log.stage_columns()[:3] == ("pk", "_event_name", "_old_item")
    assert log.tombstones == "t_tombstones"


def test_parse_columns() -> None:
    assert parse_columns("price:numeric, status") == (
        PromotedColumn("price", "numeric"),
        PromotedColumn("status", "text"),
    )
    assert parse_columns(["n:BIGINT"]) == (PromotedColumn("n", "bigint"),)
    with pytest.raises(ValueError):
        parse_columns("x:money")
    with pytest.raises(ValueError):
        parse_columns(":text")


def test_key_values_check_types_and_nul() -> None:
    keys = {"pk": {"S": "a"}, "sk": {"N": "12.5"}}
    assert key_values("s", COMPOSITE, keys, "here") == ["a", "12.5"]
    assert key_values("s", (KeyAttribute("b", "B"),), {"b": {"B": "AAE="}}, "w") == [b"\x00\x01"]
    with pytest.raises(SinkError, match="sink s: here: key attribute sk is of type S"):
        key_values("s", COMPOSITE, {"pk": {"S": "a"}, "sk": {"S": "1"}}, "here")
    with pytest.raises(SinkError, match="key attribute sk is missing"):
        key_values("s", COMPOSITE, {"pk": {"S": "a"}}, "here")
    with pytest.raises(SinkError, match="NUL"):
        key_values("s", COMPOSITE, {"pk": {"S": "a\x00"}, "sk": {"N": "1"}}, "here")


def test_last_per_key_keeps_the_last_change_of_each_key() -> None:
    a1 = record(1, {"pk": {"S": "a"}, "sk": {"N": "1"}})
    b2 = record(2, {"pk": {"S": "b"}, "sk": {"N": "1"}})
    a3 = record(3, {"sk": {"N": "1"}, "pk": {"S": "a"}}, "REMOVE")  # keys in another order
    assert [r.sequence_number for r in last_per_key([a1, b2, a3])] == ["2", "3"]


def test_state_rows_keep_one_row_per_key() -> None:
    builder = RowBuilder("s", Layout("public", "t", COMPOSITE), None, "NEW_AND_OLD_IMAGES")
    rows = builder.rows(
        [
            record(1, {"pk": {"S": "a"}, "sk": {"N": "1"}}, "INSERT"),
            record(2, {"pk": {"S": "a"}, "sk": {"N": "1"}}),
            record(3, {"pk": {"S": "a"}, "sk": {"N": "2"}}, "REMOVE"),
        ]
    )
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [("a", "1", 2, "MODIFY"),
                                                        ("a", "2", 3, "REMOVE")]  # fmt: skip
    assert rows[1][2] is None


def test_changelog_rows_keep_every_change() -> None:
    builder = RowBuilder("s", Layout("public", "t", (HASH,), "changelog"), None, "KEYS_ONLY")
    builder.check_view_type()  # changelog does not need images
    rows = builder.rows([record(1, {"pk": {"S": "a"}}), record(2, {"pk": {"S": "a"}})])
    assert [r[4] for r in rows] == [1, 2]


def test_state_mode_needs_the_new_image() -> None:
    with pytest.raises(SinkError, match="view type is KEYS_ONLY"):
        RowBuilder("s", Layout("public", "t", (HASH,)), None, "KEYS_ONLY").check_view_type()


def test_nul_in_a_value_is_refused_but_an_escaped_backslash_u_is_not() -> None:
    builder = RowBuilder("s", Layout("public", "t", (HASH,)), None, "NEW_IMAGE")
    bad = SnapshotRow({"pk": {"S": "a"}, "v": {"S": "x\x00y"}}, 0, 0)
    with pytest.raises(SinkError, match="NUL"):
        builder.snapshot_rows([bad])
    literal = SnapshotRow({"pk": {"S": "a"}, "v": {"S": "C:\\u0000dir"}}, 0, 1)
    (row,) = builder.snapshot_rows([literal])
    assert "C:\\\\u0000dir" in row[1]
    nul_name = SnapshotRow({"pk": {"S": "a"}, "k\x00": {"S": "v"}}, 0, 2)
    with pytest.raises(SinkError, match="NUL"):
        builder.snapshot_rows([nul_name])


def test_a_transform_builds_the_document_or_skips() -> None:
    def transform(r: StreamRecord) -> dict[str, Any] | None:
        return None if r.sequence_number == "1" else {"seq": int(r.sequence_number)}

    builder = RowBuilder("s", Layout("public", "t", (HASH,)), transform, "KEYS_ONLY")
    builder.check_view_type()
    rows = builder.rows([record(1, {"pk": {"S": "a"}}), record(2, {"pk": {"S": "b"}})])
    assert [(r[0], r[1]) for r in rows] == [("b", '{"seq":2}')]

    def broken(r: StreamRecord) -> dict[str, Any] | None:
        return {"ratio": 1 / 0}

    failing = RowBuilder("s", Layout("public", "t", (HASH,)), broken, "")
    with pytest.raises(SinkError, match="the transform raised ZeroDivisionError"):
        failing.rows([record(1, {"pk": {"S": "a"}})])


def test_ttl_delete_is_recognised() -> None:
    identity = {"userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}}
    assert is_ttl_delete(record(1, {"pk": {"S": "a"}}, "REMOVE", **identity))
    assert not is_ttl_delete(record(1, {"pk": {"S": "a"}}, "REMOVE"))


def test_sink_error_tells_push_back_from_bad_data() -> None:
    class Fake(Exception):
        def __init__(self, message: str, sqlstate: str) -> None:
            super().__init__(message)
            self.sqlstate = sqlstate

    assert sink_error("s", Fake("lock timeout", "55P03")).retriable
    assert sink_error("s", Fake("deadlock", "40P01")).retriable
    assert sink_error("s", Fake("too many connections", "53300")).retriable
    bad = sink_error("s", Fake("invalid\n input", "22P02"))
    assert not bad.retriable
    assert str(bad) == "sink s: write failed: invalid input [22P02]"
    assert sink_error("s", OSError("reset")).retriable
