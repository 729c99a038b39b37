"""Archive every change to files: ``file:///dir?...`` and ``s3://bucket/prefix?...``.

One file per delivered batch and partition (the sink's roll options are its batch hint,
contract rule 7), named by its shard and the first and last sequence numbers it holds
(:mod:`.archive_layout`), published complete or not at all (:mod:`.archive_store`). Before
its first write a shard's writer lists the files already archived for its shard and skips
every change at or below the highest sequence number they hold, so a change lands in
exactly one file whatever moment a worker crashed at (docs/sinks.md, "exactly once, step
by step").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from shardline.errors import ConfigError
from shardline.records import StreamRecord
from shardline.sinks.archive_formats import TypedColumn, make_encoder, parse_columns
from shardline.sinks.archive_layout import (
    GRANULARITIES,
    ArchiveFile,
    file_name,
    highest_archived,
    listing_prefixes,
    parse_file_name,
    split_by_partition,
)
from shardline.sinks.archive_store import ArchiveStore, LocalStore, S3Store
from shardline.sinks.base import BatchHint, ShardSink, Sink, SinkContext, SinkError
from shardline.sinks.options import SinkOptions

__all__ = ["ArchiveSink"]

log = logging.getLogger("shardline.sinks")

_OPTIONS = frozenset(
    {"format", "compression", "images", "columns", "partition_by", "table", "roll_records",
     "roll_bytes", "roll_seconds", "region", "endpoint_url", "profile", "sse", "kms_key_id",
     "storage_class"}
)  # fmt: skip
_COMPRESSIONS = {"jsonl": ("gzip", "none", "zstd"), "parquet": ("zstd", "snappy", "gzip", "none")}


class ArchiveSink(Sink):
    """Every change, once, in JSON Lines or Parquet files on a local disk or in S3."""

    def __init__(
        self,
        store: ArchiveStore,
        *,
        fmt: str = "jsonl",
        compression: str | None = None,
        images: str = "typed",
        columns: tuple[TypedColumn, ...] = (),
        partition_by: str = "hour",
        table: str | None = None,
        roll_records: int = 100_000,
        roll_bytes: int = 64 << 20,
        roll_seconds: float = 60.0,
        name: str | None = None,
    ) -> None:
        self.name = name or store.name
        self.store = store
        self.format = _one_of(self.name, "format", fmt, tuple(_COMPRESSIONS))
        self.compression = _one_of(
            self.name, "compression", compression or _COMPRESSIONS[fmt][0], _COMPRESSIONS[fmt]
        )
        self.images = _one_of(self.name, "images", images, ("typed", "plain"))
        self.partition_by = _one_of(self.name, "partition_by", partition_by, GRANULARITIES)
        if columns and fmt != "parquet":
            raise ConfigError(f"sink {self.name}: columns= needs format=parquet")
        if not (1 <= roll_records <= 1_000_000 and roll_bytes >= 1 << 10):
            raise ConfigError(
                f"sink {self.name}: roll_records must be 1..1000000 and roll_bytes at least 1024"
            )
        if not 0 < roll_seconds <= 3600:
            raise ConfigError(f"sink {self.name}: roll_seconds must be above 0 and at most 3600")
        self.columns = columns
        self.table = table
        self.batch_hint = BatchHint(roll_records, roll_bytes, roll_seconds, ordered=True)
        self._encoder: Any = None
        #: What this worker wrote (for status views and the demo).
        self.files_written = 0
        self.changes_archived = 0

    @classmethod
    def from_options(cls, options: SinkOptions) -> ArchiveSink:
        """Build from a parsed ``file:///dir?...`` or ``s3://bucket/prefix?...`` URL."""
        options.reject_unknown(_OPTIONS)
        name = options.name
        fmt = str(options.take("format", "jsonl")).lower()
        columns = options.take("columns", (), parse_columns)
        common: dict[str, Any] = {
            "fmt": fmt,
            "compression": options.take("compression"),
            "images": str(options.take("images", "typed")).lower(),
            "columns": columns,
            "partition_by": str(options.take("partition_by", "hour")).lower(),
            "table": options.take("table"),
            "roll_records": options.take("roll_records", 100_000, int),
            "roll_bytes": options.take("roll_bytes", 64 << 20, _size),
            "roll_seconds": options.take("roll_seconds", 60.0, float),
            "name": name,
        }
        return cls(_store_of(options), **common)

    async def start(self, context: SinkContext) -> None:
        """Check that files can be written; choose the encoder (Parquet needs pyarrow)."""
        if self.table is None:
            self.table = context.table
        if isinstance(self.store, S3Store):
            self.store.use_source_settings(context.aws)
        try:
            self._encoder = make_encoder(
                self.format,
                self.compression,
                plain=self.images == "plain",
                transform=self.transform,
                columns=self.columns,
                describe=_describe,
            )
        except ImportError as exc:
            raise SinkError(
                self.name,
                f"format={self.format} compression={self.compression} needs "
                f"pip install 'shardline[archive]' ({exc.name} is missing)",
            ) from exc
        await self.store.check()

    def open_shard(self, shard_id: str) -> ShardSink:
        """A writer that resumes after the last change archived for ``shard_id``."""
        return _ShardArchive(self, shard_id)

    async def close(self) -> None:
        await self.store.close()

    async def archived_files(self, shard_id: str, since: float, until: float) -> list[ArchiveFile]:
        """The files of ``shard_id`` that changes made between the two times could be in."""
        assert self.table is not None
        prefixes = listing_prefixes(self.table, since, until, self.partition_by)
        files: list[ArchiveFile] = []
        for path in await self.store.list_names(prefixes):
            parsed = parse_file_name(path.rsplit("/", 1)[-1])
            if parsed is not None and parsed[0] == shard_id:
                files.append(ArchiveFile(parsed[1], parsed[2], shard_id, path))
        return files

    def iam_statements(self, region: str, account: str) -> list[dict[str, Any]]:
        if not isinstance(self.store, S3Store):
            return []
        bucket = f"arn:aws:s3:::{self.store.bucket}"
        statements: list[dict[str, Any]] = [
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket},
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": f"{bucket}/{self.store.prefix}*",
            },
        ]
        key = self.store.put_options.get("SSEKMSKeyId")
        if key:  # a customer managed key: encrypting (and multipart uploads) need these
            if not key.startswith("arn:"):
                kind = "" if key.startswith("alias/") else "key/"
                key = f"arn:aws:kms:{region}:{account}:{kind}{key}"
            statements.append(
                {
                    "Effect": "Allow",
                    "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                    "Resource": key,
                }
            )
        return statements


class _ShardArchive(ShardSink):
    """One shard's files: skip what the archive holds, then one file per batch and partition."""

    def __init__(self, sink: ArchiveSink, shard_id: str) -> None:
        self.sink = sink
        self.shard_id = shard_id
        self.high: int | None = None  # highest sequence number archived (None: not listed)

    async def write(self, records: Sequence[StreamRecord]) -> None:
        self.refuse_if_lost(f"shard {self.shard_id}")
        if not records:
            return
        if self.high is None:
            self.high = await self._resume_point(records)
        fresh = [r for r in records if int(r.sequence_number) > self.high]
        if len(fresh) < len(records):
            log.info(
                "sink %s: shard %s: %d changes up to %s are archived already; skipped",
                self.sink.name,
                self.shard_id,
                len(records) - len(fresh),
                self.high,
            )
        assert self.sink.table is not None
        for partition, run in split_by_partition(fresh, self.sink.table, self.sink.partition_by):
            await self._write_file(partition, run)

    async def _resume_point(self, records: Sequence[StreamRecord]) -> int:
        """The highest sequence number the archive holds for this shard (-1: none)."""
        times = [r.approximate_creation_seconds for r in records]
        files = await self.sink.archived_files(
            self.shard_id, min(times), max(max(times), time.time())
        )
        high = highest_archived(files, self.shard_id)
        if high >= 0:
            log.info(
                "sink %s: shard %s continues after %s (%d files archived)",
                self.sink.name,
                self.shard_id,
                high,
                len(files),
            )
        return high

    async def _write_file(self, partition: str, run: list[StreamRecord]) -> None:
        encoder = self.sink._encoder
        try:
            data, rows = await asyncio.to_thread(encoder.encode, run)
        except ValueError as exc:
            raise SinkError(self.sink.name, str(exc)) from exc
        first, last = run[0].sequence_number, run[-1].sequence_number
        if rows:
            name = file_name(self.shard_id, first, last, encoder.extension)
            await self.sink.store.publish(f"{partition}/{name}", data, lambda: not self.lost)
            self.sink.files_written += 1
            self.sink.changes_archived += rows
        self.high = int(last)


def _describe(record: StreamRecord) -> str:
    return f"change {record.sequence_number} of shard {record.shard_id}"


def _one_of(name: str, option: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"sink {name}: {option}={value!r} is not one of {', '.join(allowed)}")
    return value


def _size(value: Any) -> int:
    """``64MB``, ``512KiB``, ``1000000``: bytes."""
    text = str(value).strip().upper().replace("IB", "B")
    for suffix, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def _store_of(options: SinkOptions) -> ArchiveStore:
    parts = urlsplit(options.url)
    name = options.name
    if options.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ConfigError(f"sink {name}: write file:///absolute/directory")
        return LocalStore(parts.path, name)
    if not parts.netloc:
        raise ConfigError(f"sink {name}: write s3://bucket/prefix")
    put: dict[str, str] = {}
    sse = options.take("sse")
    if sse is not None:
        put["ServerSideEncryption"] = _one_of(name, "sse", str(sse), ("AES256", "aws:kms"))
    kms = options.take("kms_key_id")
    if kms is not None:
        if put.get("ServerSideEncryption") != "aws:kms":
            raise ConfigError(f"sink {name}: kms_key_id needs sse=aws:kms")
        put["SSEKMSKeyId"] = str(kms)
    storage_class = options.take("storage_class")
    if storage_class is not None:
        put["StorageClass"] = str(storage_class)
    endpoint = options.take("endpoint_url") or options.environ.get("AWS_ENDPOINT_URL_S3")
    return S3Store(
        parts.netloc,
        parts.path,
        name,
        region=options.take("region"),
        endpoint_url=endpoint,
        profile=options.take("profile"),
        put_options=put,
    )
