"""Delta Lake sink: changelog exactly once across replays, state never older over newer.

Tables are read back with ``deltalake`` (and DuckDB over its Arrow dataset).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
from deltalake import DeltaTable

from shardline.aws.settings import AwsSettings
from shardline.sinks.base import SinkError
from shardline.sinks.delta import DeltaSink
from shardline.sinks.registry import sink_from_url
from tests.integration.support import unique
from tests.sinks.archive_support import change, context


def delta(url: str, ctx: Any = None) -> DeltaSink:
    sink = sink_from_url(url)
    assert isinstance(sink, DeltaSink)
    asyncio.run(sink.start(ctx or context()))
    return sink


def write(sink: DeltaSink, records: list[Any], shard: str) -> None:
    asyncio.run(sink.open_shard(shard).write(records))


def test_changelog_replays_add_nothing_and_commits_carry_transactions(tmp_path: Path) -> None:
    url = f"delta+file://{tmp_path}"
    shard = "shardId-a"
    write(delta(url), [change(i, f"k{i % 3}", shard=shard) for i in range(1, 11)], shard)
    # a new owner gets the batch again (crash after the commit, before the checkpoint) and more
    write(delta(url), [change(i, f"k{i % 3}", shard=shard) for i in range(1, 16)], shard)
    table = DeltaTable(str(tmp_path))
    assert table.transaction_version(f"app/{shard}") == 2
    seqs = sorted(int(s) for s in table.to_pyarrow_table().column("sequence_number").to_pylist())
    assert seqs == list(range(1, 16))
    assert table.metadata().partition_columns == ["date"]
    con = duckdb.connect()
    con.register("changes", table.to_pyarrow_dataset())
    assert con.sql(
        "SELECT count(DISTINCT (shard_id, sequence_number)) FROM changes"
    ).fetchall() == [(15,)]


def test_two_shards_commit_concurrently(tmp_path: Path) -> None:
    url = f"delta+file://{tmp_path}"
    sink = delta(url)

    async def both() -> None:
        await asyncio.gather(
            *(
                sink.open_shard(shard).write([change(i, shard=shard) for i in range(1, 30)])
                for shard in ("shardId-x", "shardId-y", "shardId-z")
            )
        )

    asyncio.run(both())
    table = DeltaTable(str(tmp_path))
    assert table.to_pyarrow_table().num_rows == 87
    assert {table.transaction_version(f"app/shardId-{s}") for s in "xyz"} == {1}


def test_state_never_older_over_newer_and_tombstones(tmp_path: Path) -> None:
    url = f"delta+file://{tmp_path}?mode=state&images=plain"
    write(delta(url), [change(5, "a"), change(6, "b", name="REMOVE")], "shardId-new")
    # a late, older batch from another shard (a replay): must not move a row back
    write(
        delta(url), [change(2, "a"), change(3, "b", name="INSERT"), change(4, "c")], "shardId-old"
    )
    rows = {r["key"]: r for r in DeltaTable(str(tmp_path)).to_pyarrow_table().to_pylist()}
    assert rows['{"pk":"a"}']["sequence"].lstrip("0") == "5"
    assert rows['{"pk":"b"}']["deleted"] and rows['{"pk":"b"}']["item"] is None
    assert rows['{"pk":"c"}']["item"] == '{"pk":"c","v":4,"s":"x"}'


def test_a_place_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file")
    with pytest.raises(SinkError) as caught:
        delta(f"delta+file://{tmp_path}/blocker/table")
    assert str(caught.value).startswith(f"sink delta+file://{tmp_path}/blocker/table: ")
    assert "\n" not in str(caught.value)


@pytest.mark.integration
def test_delta_on_the_local_stacks_s3(local_stack: Any) -> None:
    bucket = unique("delta").lower()
    boto3.client(
        "s3", endpoint_url=local_stack.endpoint_url, region_name="us-east-1"
    ).create_bucket(Bucket=bucket)
    ctx = context(aws=AwsSettings(endpoint_url=local_stack.endpoint_url, region="us-east-1"))
    url = f"delta+s3://{bucket}/orders"
    sink = delta(url, ctx)
    write(sink, [change(i, shard="shardId-s") for i in range(1, 6)], "shardId-s")
    write(delta(url, ctx), [change(i, shard="shardId-s") for i in range(1, 9)], "shardId-s")
    table = DeltaTable(f"s3://{bucket}/orders", storage_options=sink.storage_options)
    assert sorted(
        int(s) for s in table.to_pyarrow_table().column("sequence_number").to_pylist()
    ) == [*range(1, 9)]


def test_query_over_a_delta_changelog_and_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shardline.cli import main

    write(delta(f"delta+file://{tmp_path}/log"), [change(i, shard="s") for i in (1, 2)], "s")
    assert main(["query", "--sink", f"delta+file://{tmp_path}/log", "--json",
                 "SELECT count(*) AS n FROM changes"]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip() == '{"n":2}'
    write(delta(f"delta+file://{tmp_path}/st?mode=state"), [change(3, "q")], "s")
    assert main(["query", "--sink", f"delta+file://{tmp_path}/st?mode=state", "--json",
                 "SELECT key FROM state WHERE NOT deleted"]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip() == '{"key":"{\\"pk\\":{\\"S\\":\\"q\\"}}"}'
