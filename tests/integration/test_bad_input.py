"""Awkward data and misbehaving processors, end to end through the local stack."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from shardline import StreamRecord
from shardline.testing import LocalStreams

pytestmark = pytest.mark.integration

EVERY_TYPE: dict[str, Any] = {
    "pk": {"S": "ключ-🔑-鍵"},
    "s": {"S": 'naïve café ☕ 𝄞 \u0000 \n\t"quoted"'},
    "empty_s": {"S": ""},
    "n_int": {"N": "-12345678901234567890123456789012345678"},
    "n_frac": {"N": "0.000000000000000000000000000000000001"},
    "n_exp": {"N": "1.5E+125"},
    "b": {"B": b"\x00\x01\x02\xfd\xfe\xff"},  # boto3 takes raw bytes; the wire has base64
    "empty_b": {"B": b""},
    "ss": {"SS": ["a", "ü", "🙂"]},
    "ns": {"NS": ["1", "2.5", "-3"]},
    "bs": {"BS": [b"\x00", b"\xff"]},
    "t": {"BOOL": True},
    "f": {"BOOL": False},
    "nul": {"NULL": True},
    "empty_l": {"L": []},
    "empty_m": {"M": {}},
    "nested": {
        "M": {
            "l": {
                "L": [
                    {"N": "1"},
                    {"S": "x"},
                    {"M": {"deep": {"L": [{"NULL": True}, {"B": b"\x01"}, {"SS": ["z"]}]}}},
                ]
            },
            "ключ 🗝": {"BOOL": False},
        }
    },
}
DECODED: dict[str, Any] = {
    "pk": "ключ-🔑-鍵",
    "s": 'naïve café ☕ 𝄞 \u0000 \n\t"quoted"',
    "empty_s": "",
    "n_int": Decimal("-12345678901234567890123456789012345678"),
    "n_frac": Decimal("0.000000000000000000000000000000000001"),
    "n_exp": Decimal("1.5E+125"),
    "b": b"\x00\x01\x02\xfd\xfe\xff",
    "empty_b": b"",
    "ss": {"a", "ü", "🙂"},
    "ns": {Decimal(1), Decimal("2.5"), Decimal(-3)},
    "bs": {b"\x00", b"\xff"},
    "t": True,
    "f": False,
    "nul": None,
    "empty_l": [],
    "empty_m": {},
    "nested": {"l": [Decimal(1), "x", {"deep": [None, b"\x01", {"z"}]}], "ключ 🗝": False},
}


@pytest.fixture(scope="module")
def local() -> Iterator[LocalStreams]:
    with LocalStreams.start() as streams:
        yield streams


def test_every_attribute_type_decodes_exactly(local: LocalStreams) -> None:
    table = local.create_table()
    table.put_raw(EVERY_TYPE)
    with local.consume(lambda records: None, table) as run:
        (record,) = run.wait_for_records(1)
    assert record.new_image == DECODED
    assert record.keys == {"pk": DECODED["pk"]}
    wire = record.raw["dynamodb"]["NewImage"]
    assert wire["b"] == {"B": "AAEC/f7/"} and wire["n_exp"] == {"N": "1.5E+125"}


def test_binary_keys_and_a_400_kb_item(local: LocalStreams) -> None:
    table = local.create_table(hash_key="id", hash_type="B", range_key="at", range_type="N")
    big = "x" * 399_000  # with names and keys, just under DynamoDB's 400 KB item limit
    table.put({"id": b"\x00\xff\x10", "at": 1, "blob": big})
    table.put({"id": bytes(range(256)), "at": Decimal("-0.5"), "u": "日本語"})
    with local.consume(lambda records: None, table, max_records=1) as run:
        first, second = run.wait_for_records(2)
    assert first.keys == {"id": b"\x00\xff\x10", "at": 1}
    assert first.new_image is not None and first.new_image["blob"] == big
    assert second.keys == {"id": bytes(range(256)), "at": Decimal("-0.5")}


def test_empty_sets_are_refused_by_dynamodb(local: LocalStreams) -> None:
    table = local.create_table()
    with pytest.raises(Exception, match="ValidationException"):
        table.put_raw({"pk": {"S": "a"}, "ss": {"SS": []}})


def test_a_raising_processor_is_retried_and_other_shards_go_on(
    local: LocalStreams, caplog: pytest.LogCaptureFixture
) -> None:
    table = local.create_table()
    left, _ = table.split()
    keys = [f"k{i}" for i in range(40)]
    graph = local.stack.graph(table.name)
    on_left = [k for k in keys if graph.route(f'{{"S":"{k}"}}'.encode()) == left]
    poison = on_left[0]
    failures = {"left": 0}
    release = threading.Event()
    delivered: list[str] = []

    def handle(records: list[StreamRecord]) -> None:
        if any(r.keys["pk"] == poison for r in records) and not release.is_set():
            failures["left"] += 1
            raise RuntimeError("poison record")
        delivered.extend(r.keys["pk"] for r in records)

    table.put_many({"pk": k} for k in keys)
    right_keys = {k for k in keys if k not in on_left}
    with (
        caplog.at_level(logging.ERROR),
        local.consume(handle, table, retry_base_delay=0.1, retry_max_delay=0.5) as run,
    ):
        run.wait_for(lambda: right_keys <= set(delivered), what="the other shard's records")
        run.wait_for(lambda: failures["left"] >= 3, what="three retries of the poison batch")
        release.set()
        run.wait_for(lambda: set(keys) <= set(delivered), what="every record after recovery")
    assert poison in delivered  # never skipped
    lines = [r.getMessage() for r in caplog.records if "processor failed" in r.getMessage()]
    assert lines and left in lines[0] and "retrying the same batch" in lines[0]


def test_a_processor_returning_garbage_skips_nothing(local: LocalStreams) -> None:
    table = local.create_table()
    table.put_many({"pk": f"k{i}"} for i in range(10))
    garbage: list[Any] = [42, {"not": "records"}, object(), "SHARD_END", None]

    def handle(records: list[StreamRecord]) -> Any:
        return garbage[len(records) % len(garbage)]

    with local.consume(handle, table, max_records=3) as run:
        records = run.wait_for_records(10)
    assert sorted(r.keys["pk"] for r in records) == sorted(f"k{i}" for i in range(10))
