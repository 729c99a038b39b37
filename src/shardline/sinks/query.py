"""``shardline query --sink URL "SQL"``: DuckDB over an archive, as the view ``changes``.

Local files are read by DuckDB's own Parquet and JSON readers (built in: nothing is
downloaded at run time); S3 archives through pyarrow datasets with botocore's
credentials, since DuckDB's S3 support is an extension that may not be at hand.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shardline.errors import ConfigError
from shardline.sinks.archive import ArchiveSink
from shardline.sinks.archive_store import LocalStore, S3Store
from shardline.sinks.delta import DeltaSink

__all__ = ["archive_source_sql", "connect", "register", "run_query"]

_EXTENSIONS = {"parquet": "parquet", "none": "jsonl", "gzip": "jsonl.gz", "zstd": "jsonl.zst"}


def register(commands: Any) -> None:
    """Add ``query`` to the CLI's subcommands."""
    query = commands.add_parser("query", help="run DuckDB SQL over an archive (view: changes)")
    query.add_argument("--sink", required=True, help="the archive's URL, as given to run")
    query.add_argument(
        "sql", help='SQL over the view "changes", e.g. "SELECT count(*) FROM changes"'
    )
    query.add_argument("--json", action="store_true", help="print one JSON object per row")
    query.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL_S3)")
    query.set_defaults(action=_query)


def _query(args: argparse.Namespace) -> int:
    import os

    from shardline.sinks.registry import sink_from_url

    sink = sink_from_url(args.sink, environ=os.environ)
    if isinstance(sink, DeltaSink):
        _print(*run_delta_query(sink, args.sql, args.endpoint_url), as_json=args.json)
        return 0
    if not isinstance(sink, ArchiveSink):
        raise ConfigError(f"sink {sink.name}: query reads file://, s3:// and delta+ sinks only")
    if args.endpoint_url and isinstance(sink.store, S3Store):
        sink.store.endpoint_url = args.endpoint_url
    columns, rows = run_query(sink, args.sql)
    _print(columns, rows, as_json=args.json)
    return 0


def archive_source_sql(sink: ArchiveSink) -> str:
    """The DuckDB table function reading a local archive's files, with Hive partitions."""
    assert isinstance(sink.store, LocalStore)
    key = "parquet" if sink.format == "parquet" else sink.compression
    pattern = f"{sink.store.root}/**/*.{_EXTENSIONS[key]}".replace("'", "''")
    reader = "read_parquet" if sink.format == "parquet" else "read_json"
    return f"{reader}('{pattern}', hive_partitioning = true, union_by_name = true)"


def connect(sink: ArchiveSink) -> Any:
    """A DuckDB connection with the view ``changes`` over ``sink``'s archive."""
    import duckdb

    con = duckdb.connect()
    if isinstance(sink.store, LocalStore):
        con.execute(f"CREATE VIEW changes AS SELECT * FROM {archive_source_sql(sink)}")
        return con
    con.register("changes", _s3_dataset(sink))
    return con


def _s3_dataset(sink: ArchiveSink) -> Any:
    """The archive's objects as a pyarrow dataset, signed with botocore's credentials."""
    import botocore.session
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from shardline.aws.credentials import remember_credentials

    store = sink.store
    assert isinstance(store, S3Store)
    session = botocore.session.Session(profile=store.profile)
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials() if credentials else None
    if frozen is not None:
        remember_credentials(frozen)
    endpoint = store.endpoint_url or ""
    filesystem = pafs.S3FileSystem(
        access_key=frozen.access_key if frozen else None,
        secret_key=frozen.secret_key if frozen else None,
        session_token=frozen.token if frozen else None,
        region=store.region or session.get_config_variable("region") or "us-east-1",
        endpoint_override=endpoint.split("://", 1)[-1] or None,
        scheme="http" if endpoint.startswith("http://") else "https",
    )
    fmt = "parquet" if sink.format == "parquet" else "json"
    root = f"{store.bucket}/{store.prefix}".rstrip("/")
    return ds.dataset(root, filesystem=filesystem, format=fmt, partitioning="hive")


def run_query(sink: ArchiveSink, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The column names and rows of ``sql`` over ``sink``'s archive; one-line errors."""
    import duckdb

    try:
        con = connect(sink)
        relation = con.sql(sql)
        if relation is None:
            return [], []
        return list(relation.columns), relation.fetchall()
    except duckdb.IOException as exc:
        raise ConfigError(f"sink {sink.name}: no archived files to read yet ({exc})") from exc
    except (duckdb.Error, OSError) as exc:
        raise ConfigError(f"sink {sink.name}: query failed: {exc}") from exc


def run_delta_query(
    sink: DeltaSink, sql: str, endpoint_url: str | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """``sql`` over a Delta table (the view ``changes``, or ``state`` with mode=state)."""
    import asyncio

    import duckdb

    from shardline.aws.settings import AwsSettings
    from shardline.sinks.base import SinkContext

    if endpoint_url:
        sink.s3_settings["endpoint_url"] = endpoint_url
    asyncio.run(sink.start(SinkContext("", "", (), "query", aws=AwsSettings())))
    table = sink.table()
    if table is None:
        raise ConfigError(f"sink {sink.name}: no Delta table there yet")
    con = duckdb.connect()
    con.register("changes" if sink.mode == "changelog" else "state", table.to_pyarrow_dataset())
    try:
        relation = con.sql(sql)
        return ([], []) if relation is None else (list(relation.columns), relation.fetchall())
    except duckdb.Error as exc:
        raise ConfigError(f"sink {sink.name}: query failed: {exc}") from exc


def _print(columns: list[str], rows: list[tuple[Any, ...]], *, as_json: bool) -> None:
    if as_json:
        import orjson

        for row in rows:
            line = orjson.dumps(dict(zip(columns, row, strict=True)), default=str)
            sys.stdout.write(line.decode() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    Console(width=200).print(table)
