"""The archive sink on local files: columns, layout, resume after a crash, bad input.

Files are read back with pyarrow and DuckDB, the readers users have.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from shardline.errors import ConfigError
from shardline.sinks.archive_formats import COLUMNS
from shardline.sinks.archive_layout import file_name, parse_file_name, temporary_name
from shardline.sinks.base import SinkError
from shardline.sinks.registry import sink_from_url
from tests.sinks.archive_support import SHARD, T0, archived_files, change, started, write


def duck(sql: str) -> list[tuple[Any, ...]]:
    return duckdb.connect().sql(sql).fetchall()


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_columns_and_values_read_back(tmp_path: Path, fmt: str) -> None:
    sink = started(f"file://{tmp_path}?format={fmt}")
    records = [
        change(10, "a", name="INSERT"),
        change(11, "a"),
        change(12, "a", name="REMOVE", ttl=True),
    ]
    write(sink, records)
    (path,) = archived_files(tmp_path)
    assert path.relative_to(tmp_path).parts[:3] == ("table=Orders", "date=2026-11-18", "hour=11")
    pattern = f"{tmp_path}/**/*.{'parquet' if fmt == 'parquet' else 'jsonl.gz'}"
    reader = "read_parquet" if fmt == "parquet" else "read_json"
    rows = duck(
        f"SELECT {', '.join(COLUMNS)} FROM {reader}('{pattern}', hive_partitioning=false) "
        "ORDER BY lpad(sequence_number, 40, '0')"
    )
    assert [r[:2] for r in rows] == [("e10", "INSERT"), ("e11", "MODIFY"), ("e12", "REMOVE")]
    first = dict(zip(COLUMNS, rows[0], strict=True))
    assert json.loads(first["keys"]) == {"pk": {"S": "a"}}
    assert first["sequence_number"] == "10" and first["shard_id"] == SHARD
    assert first["approximate_creation_time"].timestamp() == T0
    assert first["old_image"] is None
    assert json.loads(first["new_image"])["v"] == {"N": "10"}
    assert [r[COLUMNS.index("ttl_delete")] for r in rows] == [False, False, True]
    assert rows[2][COLUMNS.index("new_image")] is None
    assert {r[COLUMNS.index("stream_view_type")] for r in rows} == {"NEW_AND_OLD_IMAGES"}


def test_parquet_schema_pyarrow_dataset_and_typed_columns(tmp_path: Path) -> None:
    sink = started(f"file://{tmp_path}?format=parquet&images=plain&columns=v:bigint,s")
    write(sink, [change(i, f"k{i}") for i in range(1, 6)])
    table = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 5
    assert table.schema.field("approximate_creation_time").type.tz == "UTC"
    assert table.column("v").to_pylist() == [1, 2, 3, 4, 5]
    assert table.column("s").to_pylist() == ["x"] * 5
    assert json.loads(table.column("new_image")[0].as_py()) == {"pk": "k1", "v": 1, "s": "x"}
    assert table.column("table").to_pylist()[0] == "Orders"


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_jsonl_compressions_read_by_duckdb(tmp_path: Path, compression: str) -> None:
    sink = started(f"file://{tmp_path}?format=jsonl&compression={compression}")
    write(sink, [change(i) for i in range(1, 4)])
    (path,) = archived_files(tmp_path)
    assert path.name.endswith({"none": ".jsonl", "zstd": ".jsonl.zst"}[compression])
    if compression == "none":
        assert duck(f"SELECT count(*) FROM read_json('{path}')") == [(3,)]
    else:
        import zstandard

        lines = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
        assert len(lines.splitlines()) == 3


def test_a_batch_over_an_hour_boundary_becomes_files_in_order(tmp_path: Path) -> None:
    sink = started(f"file://{tmp_path}?format=parquet")
    write(sink, [change(i, at=T0 + i * 600) for i in range(1, 13)])
    names = [parse_file_name(p.name) for p in archived_files(tmp_path)]
    ranges = sorted((n[1], n[2]) for n in names if n)
    assert ranges[0][0] == 1 and ranges[-1][1] == 12
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))


def test_a_new_owner_skips_what_the_archive_holds(tmp_path: Path) -> None:
    """Crash after the file, before the checkpoint: the replay writes nothing twice."""
    url = f"file://{tmp_path}?format=parquet"
    write(started(url), [change(i) for i in range(1, 11)])
    # the next owner gets the batch again (checkpoint not written) and more
    write(started(url), [change(i) for i in range(1, 16)])
    seqs = [r[0] for r in duck(f"SELECT sequence_number FROM '{tmp_path}/**/*.parquet'")]
    assert sorted(map(int, seqs)) == list(range(1, 16))
    assert len(archived_files(tmp_path)) == 2


def test_crash_during_the_write_leaves_nothing_visible(tmp_path: Path) -> None:
    """A temporary file of a crashed writer is hidden; the replay writes the range once."""
    url = f"file://{tmp_path}?format=jsonl"
    final = tmp_path / "table=Orders/date=2026-11-18/hour=11"
    final.mkdir(parents=True)
    name = file_name(SHARD, "1", "5", "jsonl.gz")
    (final / temporary_name(name, "deadbeef")).write_bytes(b"half a fil")
    write(started(url), [change(i) for i in range(1, 6)])
    assert [p.name for p in archived_files(tmp_path)] == [name]
    assert duck(f"SELECT count(*) FROM read_json('{tmp_path}/**/*.jsonl.gz')") == [(5,)]


def test_other_shards_files_do_not_move_a_shard(tmp_path: Path) -> None:
    url = f"file://{tmp_path}?format=parquet"
    write(started(url), [change(i, shard="shardId-other") for i in range(1, 50)], "shardId-other")
    write(started(url), [change(i) for i in range(1, 5)])
    assert duck(f"SELECT count(*) FROM '{tmp_path}/**/*.parquet' WHERE shard_id = '{SHARD}'") == [
        (4,)
    ]


def test_transform_replaces_new_image_and_can_skip(tmp_path: Path) -> None:
    sink = started(f"file://{tmp_path}?format=parquet")
    sink.transform = lambda r: None if r.sequence_number == "2" else {"n": int(r.sequence_number)}
    asyncio.run(sink.start(_ctx()))
    write(sink, [change(1), change(2), change(3)])
    rows = duck(f"SELECT sequence_number, new_image FROM '{tmp_path}/**/*.parquet' ORDER BY 1")
    assert rows == [("1", '{"n":1}'), ("3", '{"n":3}')]


def _ctx() -> Any:
    from tests.sinks.archive_support import context

    return context()


def test_batch_hint_from_roll_options() -> None:
    sink = sink_from_url("file:///tmp/x?roll_records=5000&roll_bytes=8MB&roll_seconds=30")
    hint = sink.batch_hint
    assert hint is not None
    assert (hint.records, hint.bytes, hint.seconds, hint.ordered) == (5000, 8 << 20, 30.0, True)


# --- bad input ---------------------------------------------------------------------------


def test_unwritable_directory_is_one_line_naming_the_sink(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):
        pytest.skip("running as root: permissions are not enforced")
    with pytest.raises(SinkError) as caught:
        started(f"file://{locked}/archive?format=jsonl")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"sink file://{locked}/archive")
    assert "Permission denied" in message and not caught.value.retriable


def test_full_disk_is_pushback_and_nothing_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = started(f"file://{tmp_path}?format=parquet")
    real_write = os.write

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    writer = sink.open_shard(SHARD)
    with pytest.raises(SinkError) as caught:
        asyncio.run(writer.write([change(1), change(2)]))
    assert caught.value.retriable and "No space left on device" in str(caught.value)
    assert str(caught.value).startswith(f"sink file://{tmp_path}")
    assert archived_files(tmp_path) == []
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # the temporary is gone
    monkeypatch.setattr(os, "write", real_write)
    asyncio.run(writer.write([change(1), change(2)]))  # the retry, once space is back
    assert duck(f"SELECT count(*) FROM '{tmp_path}/**/*.parquet'") == [(2,)]


@pytest.mark.parametrize(
    ("columns", "words"),
    [
        ("order date:string", "cannot be a Parquet column"),
        ("a,b;c", "cannot be a Parquet column"),
        ("keys", "already a column"),
        ("v:decimal", "not one of"),
    ],
)
def test_columns_parquet_cannot_hold_are_refused(columns: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sink_from_url(f"file:///tmp/a?format=parquet&columns={columns}")
    assert words in str(caught.value) and str(caught.value).startswith("sink file:///tmp/a")


def test_a_value_of_the_wrong_type_fails_the_batch_naming_the_change(tmp_path: Path) -> None:
    sink = started(f"file://{tmp_path}?format=parquet&columns=v:boolean")
    with pytest.raises(SinkError) as caught:
        write(sink, [change(1)])
    assert "change 1 of shard" in str(caught.value) and "not a boolean" in str(caught.value)
    assert not caught.value.retriable
    assert archived_files(tmp_path) == []


@pytest.mark.parametrize(
    "url",
    [
        "file://relative/dir",
        "file:///tmp/a?format=csv",
        "file:///tmp/a?format=jsonl&compression=snappy",
        "file:///tmp/a?format=jsonl&columns=v",
        "file:///tmp/a?roll_seconds=0",
        "file:///tmp/a?partition_by=week",
        "file:///tmp/a?bogus=1",
        "s3://bucket/p?kms_key_id=k",
    ],
)
def test_bad_options_are_one_line(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sink_from_url(url)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("sink ")


def test_parquet_files_carry_row_groups_readable_by_pyarrow(tmp_path: Path) -> None:
    sink = started(f"file://{tmp_path}?format=parquet")
    write(sink, [change(i) for i in range(1, 1001)])
    (path,) = archived_files(tmp_path)
    assert pq.ParquetFile(path).metadata.num_rows == 1000


def test_a_file_where_the_directory_should_be_is_one_line(tmp_path: Path) -> None:
    """What an unwritable directory looks like when the tests run as root."""
    (tmp_path / "blocker").write_text("not a directory")
    with pytest.raises(SinkError) as caught:
        started(f"file://{tmp_path}/blocker/archive")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"sink file://{tmp_path}/blocker/archive:")
    assert "cannot write to directory" in message and not caught.value.retriable


def test_iam_statements_of_an_s3_archive() -> None:
    sink = sink_from_url("s3://logs/cdc/orders?sse=aws:kms&kms_key_id=alias/archive")
    statements = sink.iam_statements("eu-west-1", "123456789012")
    assert statements[0] == {
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": "arn:aws:s3:::logs",
    }
    assert statements[1]["Resource"] == "arn:aws:s3:::logs/cdc/orders/*"
    assert statements[2]["Resource"] == "arn:aws:kms:eu-west-1:123456789012:alias/archive"
    assert sink_from_url("file:///tmp/a").iam_statements("eu-west-1", "1") == []


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_a_file_larger_than_one_chunk_is_whole(tmp_path: Path, fmt: str) -> None:
    from shardline.sinks.archive_formats import CHUNK_ROWS

    sink = started(f"file://{tmp_path}?format={fmt}")
    write(sink, [change(i) for i in range(1, CHUNK_ROWS + 101)])
    (path,) = archived_files(tmp_path)
    reader = "read_parquet" if fmt == "parquet" else "read_json"
    assert duck(f"SELECT count(*), max(sequence_number::BIGINT) FROM {reader}('{path}')") == [
        (CHUNK_ROWS + 100, CHUNK_ROWS + 100)
    ]
    if fmt == "parquet":
        assert pq.ParquetFile(path).metadata.num_row_groups == 2


def test_a_lease_lost_during_the_write_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close(lost=True) arrives while the bytes are being written: no rename follows."""
    from shardline.sinks import archive_store

    sink = started(f"file://{tmp_path}?format=parquet")
    writer = sink.open_shard(SHARD)
    real = archive_store._write_synced

    def write_then_lose(path: Path, data: bytes) -> None:
        real(path, data)
        asyncio.run(writer.close(lost=True))

    monkeypatch.setattr(archive_store, "_write_synced", write_then_lose)
    with pytest.raises(SinkError, match="lease lost"):
        asyncio.run(writer.write([change(1)]))
    assert archived_files(tmp_path) == []
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]
