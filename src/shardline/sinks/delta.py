"""Delta Lake tables: ``delta+file:///dir`` and ``delta+s3://bucket/path`` (``deltalake``, no JVM).

Two modes:

* ``mode=changelog`` (default): every change appended, the archive's columns
  (:mod:`.archive_formats`) plus ``date`` (``YYYY-MM-DD`` of the change, the partition).
* ``mode=state``: one row per item, merged by key, never older over newer: a row is
  replaced only by a change with a higher sequence number; a REMOVE keeps a tombstone row
  (``deleted`` true, ``item`` null) so a replayed older change cannot bring the item back.

Exactly once: each batch is one Delta commit (atomic: the log entry appears or not),
carrying an application transaction ``(app_id = "<application>/<shard>", version)`` with
the version counting the shard's commits. Before its first write a shard's writer reads
that version; when there is one, it reads the highest sequence number the table holds for
the shard (only the date partitions a replay can reach) and skips changes at or below it
-- the same rule as the archive. Appends from several workers commit concurrently (Delta
retries a commit that lost the race; appends never conflict).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson

from shardline.errors import ConfigError, ShutdownError
from shardline.records import StreamRecord
from shardline.sinks.archive_formats import COLUMNS, change_columns
from shardline.sinks.base import BatchHint, ShardSink, Sink, SinkContext, SinkError
from shardline.sinks.changes import last_per_key
from shardline.sinks.options import SinkOptions

__all__ = ["DeltaSink"]

log = logging.getLogger("shardline.sinks")

_OPTIONS = frozenset(
    {"mode", "images", "roll_records", "roll_bytes", "roll_seconds", "region", "endpoint_url",
     "profile"}
)  # fmt: skip


class DeltaSink(Sink):
    """A stream's changes as a Delta Lake table (changelog or current state)."""

    def __init__(
        self,
        uri: str,
        *,
        mode: str = "changelog",
        images: str = "typed",
        roll_records: int = 100_000,
        roll_bytes: int = 64 << 20,
        roll_seconds: float = 60.0,
        storage_options: dict[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or uri
        if mode not in ("changelog", "state"):
            raise ConfigError(f"sink {self.name}: mode={mode!r} is not one of changelog, state")
        if images not in ("typed", "plain"):
            raise ConfigError(f"sink {self.name}: images={images!r} is not one of typed, plain")
        self.uri = uri
        self.mode = mode
        self.plain = images == "plain"
        self.storage_options = dict(storage_options or {})
        self.batch_hint = BatchHint(roll_records, roll_bytes, roll_seconds, ordered=True)
        self.application = ""
        #: S3 only: ``region``, ``endpoint_url``, ``profile`` (default: the source's).
        self.s3_settings: dict[str, Any] = {}

    @classmethod
    def from_options(cls, options: SinkOptions) -> DeltaSink:
        """Build from ``delta+file:///dir?...`` or ``delta+s3://bucket/path?...``."""
        from shardline.sinks.archive import _size

        options.reject_unknown(_OPTIONS)
        parts = urlsplit(options.url)
        name = options.name
        if name.startswith("delta+file:/") and not name.startswith("delta+file://"):
            name = "delta+file://" + name.removeprefix("delta+file:")  # urlunsplit drops //
        inner = options.scheme.removeprefix("delta+")
        if inner == "file":
            if parts.netloc or not parts.path.startswith("/"):
                raise ConfigError(f"sink {options.name}: write delta+file:///absolute/directory")
            uri = parts.path
        elif inner == "s3" and parts.netloc:
            uri = f"s3://{parts.netloc}{parts.path}".rstrip("/")
        else:
            raise ConfigError(f"sink {options.name}: write delta+file:///dir or delta+s3://b/p")
        sink = cls(
            uri,
            mode=str(options.take("mode", "changelog")).lower(),
            images=str(options.take("images", "typed")).lower(),
            roll_records=options.take("roll_records", 100_000, int),
            roll_bytes=options.take("roll_bytes", 64 << 20, _size),
            roll_seconds=options.take("roll_seconds", 60.0, float),
            name=name,
        )
        sink.s3_settings = {
            "region": options.take("region"),
            "endpoint_url": options.take("endpoint_url")
            or options.environ.get("AWS_ENDPOINT_URL_S3"),
            "profile": options.take("profile"),
        }
        return sink

    async def start(self, context: SinkContext) -> None:
        """Check that ``deltalake`` is installed and the table's place can be reached."""
        try:
            import deltalake  # noqa: F401
        except ImportError as exc:
            raise SinkError(self.name, "needs pip install 'shardline[delta]'") from exc
        self.application = context.application
        if self.uri.startswith("s3://"):
            self.storage_options = {**_s3_storage(self, context), **self.storage_options}
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            DeltaTable(self.uri, storage_options=self.storage_options or None)
        except TableNotFoundError:
            self._create()
        except Exception as exc:
            raise SinkError(self.name, f"cannot open the table: {_short(exc)}") from exc

    def _create(self) -> None:
        """Create the empty table, so that the shards' first commits are plain appends
        (concurrent creations conflict); another worker creating it first is fine."""
        from deltalake import DeltaTable

        if not self.uri.startswith("s3://"):
            import os

            try:
                os.makedirs(self.uri, exist_ok=True)
            except OSError as exc:
                raise SinkError(self.name, f"cannot create {self.uri}: {exc.strerror}") from exc
        changelog = self.mode == "changelog"
        try:
            DeltaTable.create(
                self.uri,
                changelog_schema() if changelog else state_schema(),
                mode="ignore",
                partition_by=["date"] if changelog else None,
                storage_options=self.storage_options or None,
            )
        except Exception as exc:
            if self.table() is None:
                raise SinkError(self.name, f"cannot create the table: {_short(exc)}") from exc

    def open_shard(self, shard_id: str) -> ShardSink:
        """A writer that resumes after the last change the table holds for ``shard_id``."""
        return _ShardDelta(self, shard_id)

    # --- blocking work, on a thread -------------------------------------------------------

    def table(self) -> Any:
        """The table, or ``None`` when it has no commit yet."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.uri, storage_options=self.storage_options or None)
        except TableNotFoundError:
            return None

    def resume_point(self, shard_id: str, since: float) -> tuple[int, int]:
        """``(commits, highest sequence number)`` the table holds for ``shard_id``."""
        table = self.table()
        version = table.transaction_version(self.app_id(shard_id)) if table else None
        if not version:
            return 0, -1
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        rows = ds.field("shard_id") == shard_id
        if self.mode == "changelog":
            first = (datetime.fromtimestamp(since, tz=UTC) - timedelta(days=1)).date()
            rows = rows & (ds.field("date") >= first.isoformat())
        column = "sequence_number" if self.mode == "changelog" else "shard_sequence"
        found = table.to_pyarrow_dataset().to_table(columns=[column], filter=rows)
        padded = pc.utf8_lpad(found.column(column), 40, "0")  # text order is number order
        highest = pc.max(padded).as_py() if found.num_rows else None
        return int(version), int(highest) if highest else -1

    def app_id(self, shard_id: str) -> str:
        """The Delta application transaction id of one shard of this application."""
        return f"{self.application}/{shard_id}"

    def commit(self, shard_id: str, records: Sequence[StreamRecord], version: int) -> int:
        """One commit of ``records`` with the shard's transaction at ``version``."""
        from deltalake import CommitProperties, Transaction, write_deltalake

        properties = CommitProperties(
            app_transactions=[Transaction(self.app_id(shard_id), version)],
            max_commit_retries=50,
        )
        if self.mode == "changelog":
            data = changelog_table(records, self.plain)
            if data.num_rows == 0:
                return 0
            write_deltalake(
                self.uri,
                data,
                mode="append",
                partition_by=["date"],
                storage_options=self.storage_options or None,
                commit_properties=properties,
            )
            return int(data.num_rows)
        data = state_table(last_per_key(records), self.plain)
        table = self.table()
        if table is None:
            write_deltalake(
                self.uri,
                data,
                mode="append",
                storage_options=self.storage_options or None,
                commit_properties=properties,
            )
            return int(data.num_rows)
        _merge(table, data, properties)
        return int(data.num_rows)


def _merge(table: Any, data: Any, properties: Any) -> None:
    """Upsert newer rows only: the guard is the 40-digit sequence text."""
    (
        table.merge(
            data,
            predicate="t.key = s.key",
            source_alias="s",
            target_alias="t",
            commit_properties=properties,
        )
        .when_matched_update_all(predicate="t.sequence < s.sequence")
        .when_not_matched_insert_all()
        .execute()
    )


def changelog_schema() -> Any:
    """The changelog table's columns: the archive's, and ``date`` (the partition)."""
    import pyarrow as pa

    text, flag = pa.string(), pa.bool_()
    types = {"approximate_creation_time": pa.timestamp("ms", tz="UTC"), "ttl_delete": flag}
    return pa.schema([(name, types.get(name, text)) for name in (*COLUMNS, "date")])


def state_schema() -> Any:
    """The state table's columns."""
    import pyarrow as pa

    text, flag = pa.string(), pa.bool_()
    return pa.schema(
        [("key", text), ("item", text), ("deleted", flag), ("sequence", text),
         ("event_name", text), ("approximate_creation_time", pa.timestamp("ms", tz="UTC")),
         ("ttl_delete", flag), ("shard_id", text), ("shard_sequence", text)]
    )  # fmt: skip


def changelog_table(records: Sequence[StreamRecord], plain: bool) -> Any:
    """The archive's columns plus ``date``, as a pyarrow table."""
    import pyarrow as pa

    data, _ = change_columns(records, plain=plain)
    times = pa.array(data["approximate_creation_time"], pa.int64()).cast(
        pa.timestamp("ms", tz="UTC")
    )
    columns: dict[str, Any] = {name: data[name] for name in COLUMNS}
    columns["approximate_creation_time"] = times
    columns["date"] = [
        datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")
        for ms in data["approximate_creation_time"]
    ]
    return pa.table(columns, schema=changelog_schema())


def state_table(records: Sequence[StreamRecord], plain: bool) -> Any:
    """One row per key: ``key`` (sorted JSON), ``item``, ``deleted``, ``sequence`` (40
    digits), ``shard_id``, ``shard_sequence`` (the same, for resuming), change facts."""
    import pyarrow as pa

    data, _ = change_columns(records, plain=plain)
    keys = [
        orjson.dumps(orjson.loads(k), option=orjson.OPT_SORT_KEYS).decode() for k in data["keys"]
    ]
    padded = [s.zfill(40) for s in data["sequence_number"]]
    deleted = [name == "REMOVE" for name in data["event_name"]]
    items = [
        None if gone else image for gone, image in zip(deleted, data["new_image"], strict=True)
    ]
    return pa.table(
        {
            "key": keys,
            "item": pa.array(items, pa.string()),
            "deleted": deleted,
            "sequence": padded,
            "event_name": data["event_name"],
            "approximate_creation_time": pa.array(
                data["approximate_creation_time"], pa.int64()
            ).cast(pa.timestamp("ms", tz="UTC")),
            "ttl_delete": data["ttl_delete"],
            "shard_id": data["shard_id"],
            "shard_sequence": padded,
        },
        schema=state_schema(),
    )


class _ShardDelta(ShardSink):
    """One shard's commits: skip what the table holds, then one commit per batch."""

    def __init__(self, sink: DeltaSink, shard_id: str) -> None:
        self.sink = sink
        self.shard_id = shard_id
        self.version: int | None = None
        self.high = -1

    async def write(self, records: Sequence[StreamRecord]) -> None:
        self.refuse_if_lost(f"shard {self.shard_id}")
        if not records:
            return
        try:
            version = self.version
            if version is None:
                since = min(r.approximate_creation_seconds for r in records)
                commits, self.high = await asyncio.to_thread(
                    self.sink.resume_point, self.shard_id, since
                )
                self.version = version = commits
            fresh = [r for r in records if int(r.sequence_number) > self.high]
            if len(fresh) < len(records):
                log.info(
                    "sink %s: shard %s: %d changes up to %s are in the table already; skipped",
                    self.sink.name,
                    self.shard_id,
                    len(records) - len(fresh),
                    self.high,
                )
            if fresh:
                await asyncio.to_thread(self.sink.commit, self.shard_id, fresh, version + 1)
                self.version = version + 1
                self.high = int(fresh[-1].sequence_number)
        except (SinkError, ShutdownError):
            raise
        except Exception as exc:
            raise SinkError(self.sink.name, _short(exc), retriable=_transient(exc)) from exc


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400] or type(exc).__name__


def _transient(exc: BaseException) -> bool:
    from deltalake.exceptions import CommitFailedError

    text = str(exc).lower()
    return isinstance(exc, CommitFailedError | OSError) or "timeout" in text or "503" in text


def _s3_storage(sink: DeltaSink, context: SinkContext) -> dict[str, str]:
    """deltalake's S3 settings from botocore's credentials and the sink's endpoint."""
    import botocore.session

    from shardline.aws.credentials import remember_credentials
    from shardline.aws.endpoints import region_or_aws_region

    s3 = sink.s3_settings
    aws = context.aws
    profile = s3.get("profile") or (aws.profile if aws else None)
    session = botocore.session.Session(profile=profile)
    credentials = session.get_credentials()
    options: dict[str, str] = {"conditional_put": "etag"}
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        remember_credentials(frozen)
        options["AWS_ACCESS_KEY_ID"] = frozen.access_key
        options["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key
        if frozen.token:
            options["AWS_SESSION_TOKEN"] = frozen.token
    region = s3.get("region") or (aws.region if aws else None)
    options["AWS_REGION"] = region_or_aws_region(region) or "us-east-1"
    endpoint = s3.get("endpoint_url") or (
        aws.endpoint_url if aws and not s3.get("region") else None
    )
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options
