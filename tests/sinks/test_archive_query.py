"""`shardline query`: DuckDB over a local archive and, through pyarrow, over S3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from shardline.aws.settings import AwsSettings
from shardline.cli import main
from shardline.sinks.archive import ArchiveSink
from shardline.sinks.query import run_query
from tests.integration.support import unique
from tests.sinks.archive_support import change, context, started, write

STATE = (
    "SELECT keys->>'$.pk.S' AS pk, new_image->>'$.v.N' AS v FROM changes "
    "QUALIFY row_number() OVER (PARTITION BY keys ORDER BY lpad(sequence_number, 40, '0') DESC) = 1"
    " AND event_name <> 'REMOVE' ORDER BY pk"
)
HISTORY = (
    "SELECT event_name, sequence_number FROM changes WHERE keys->>'$.pk.S' = 'a' "
    "ORDER BY lpad(sequence_number, 40, '0')"
)


def history_records() -> list[Any]:
    return [
        change(8, "a", name="INSERT"),
        change(9, "b", name="INSERT"),
        change(10, "a"),
        change(11, "b", name="REMOVE"),
        change(12, "c", name="INSERT"),
    ]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_state_and_history_of_a_key_from_the_cli(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"file://{tmp_path}?format={fmt}"
    write(started(url), history_records())
    assert main(["query", "--sink", url, "--json", STATE]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"pk": "a", "v": "10"}, {"pk": "c", "v": "12"}]
    assert main(["query", "--sink", url, HISTORY]) == 0
    shown = capsys.readouterr().out
    assert "INSERT" in shown and "MODIFY" in shown and shown.index("8") < shown.index("10")


def test_an_empty_archive_and_bad_sql_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "--sink", f"file://{tmp_path}?format=parquet", "SELECT 1"]) == 2
    assert "no archived files to read yet" in capsys.readouterr().err
    write(started(f"file://{tmp_path}?format=parquet"), [change(1)])
    assert main(["query", "--sink", f"file://{tmp_path}?format=parquet", "SELEC"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"shardline: error: sink file://{tmp_path}: query failed")
    assert err.count("\n") == 1


@pytest.mark.integration
def test_state_over_s3_through_pyarrow(local_stack: Any) -> None:
    bucket = unique("query").lower()
    boto3.client(
        "s3", endpoint_url=local_stack.endpoint_url, region_name="us-east-1"
    ).create_bucket(Bucket=bucket)
    ctx = context(aws=AwsSettings(endpoint_url=local_stack.endpoint_url, region="us-east-1"))
    sink = started(f"s3://{bucket}/cdc?format=parquet", ctx)
    write(sink, history_records())
    assert isinstance(sink, ArchiveSink)
    columns, rows = run_query(sink, STATE)
    assert columns == ["pk", "v"] and rows == [("a", "10"), ("c", "12")]
