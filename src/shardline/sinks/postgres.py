"""Replication into PostgreSQL (``postgresql://`` URLs, libpq conventions), on psycopg 3.

``mode=state`` (default) keeps one row per item; ``mode=changelog`` appends every change.
Each batch is one transaction: the last change of each key is copied into a temporary
staging table, then merged by one guarded statement (:mod:`.postgres_sql`), so a replay
after a crash never moves a row back. libpq's environment (``PGPASSWORD``, ``PGHOST``,
``.pgpass``, ``sslmode``) is honoured; ``secret_env=VAR`` names the password's variable.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from shardline.errors import ConfigError
from shardline.records import StreamRecord
from shardline.redact import SECRETS, secrets_in_url
from shardline.sinks.base import ShardSink, Sink, SinkContext, SinkError, SnapshotRow
from shardline.sinks.options import SinkOptions, mask_url, parse_bool
from shardline.sinks.postgres_rows import RowBuilder
from shardline.sinks.postgres_sql import PROMOTABLE_TYPES, Layout, PromotedColumn

log = logging.getLogger("shardline.sinks.postgres")

__all__ = ["PostgresSink"]

_STAGE = "_shardline_stage"
_OPTIONS = frozenset(
    {"table", "mode", "create", "columns", "pool_size", "lock_timeout", "statement_timeout",
     "tombstone_hours"}
)  # fmt: skip
#: libpq parameters that stay in the connection string.
LIBPQ_PARAMETERS = frozenset(
    {"sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "connect_timeout",
     "application_name", "options", "target_session_attrs", "host", "hostaddr", "port",
     "dbname", "user", "passfile", "channel_binding", "gssencmode", "keepalives",
     "keepalives_idle", "service", "sslnegotiation"}
)  # fmt: skip
#: SQLSTATE classes and codes that mean "the database pushed back; try again later".
_RETRIABLE_STATES = ("08", "40", "53", "57", "55P03", "58")
_TIMEOUT = re.compile(r"\A\d+(ms|s|min)?\Z")


class PostgresSink(Sink):
    """Replicates a DynamoDB table into a PostgreSQL table.

    Build it from a URL with :func:`~shardline.sinks.registry.sink_from_url` or directly::

        PostgresSink("postgresql://app@db:5432/app", table="orders", snapshot=True)
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str | None = None,
        mode: str = "state",
        create: bool = True,
        columns: Sequence[PromotedColumn] = (),
        pool_size: int = 4,
        lock_timeout: str = "5s",
        statement_timeout: str = "60s",
        tombstone_hours: float = 48.0,
        password: str | None = None,
        snapshot: bool = False,
        transform: Any = None,
        name: str | None = None,
    ) -> None:
        name = name or mask_url(dsn)
        SECRETS.add(password, *secrets_in_url(dsn))
        if mode not in ("state", "changelog"):
            raise ConfigError(f"sink {name}: mode must be state or changelog, got {mode!r}")
        if pool_size < 1:
            raise ConfigError(f"sink {name}: pool_size must be at least 1")
        for label, value in (
            ("lock_timeout", lock_timeout),
            ("statement_timeout", statement_timeout),
        ):
            if not _TIMEOUT.match(value):
                raise ConfigError(f"sink {name}: {label} must look like 5s or 500ms")
        if columns and mode != "state":
            raise ConfigError(f"sink {name}: columns= works with mode=state only")
        self.dsn = dsn
        self.name = name
        self.table_option = table
        self.mode = mode
        self.create = create
        self.columns = tuple(columns)
        self.pool_size = pool_size
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self.tombstone_hours = tombstone_hours
        self.password = password
        self.snapshot = snapshot
        self.transform = transform
        self.layout: Layout | None = None
        self._pool: Any = None
        self._rows: RowBuilder | None = None
        self._merge: Any = None
        self._copy: Any = None

    @classmethod
    def from_options(cls, options: SinkOptions) -> PostgresSink:
        """Build from a parsed URL (see :mod:`shardline.sinks.options`)."""
        options.reject_unknown(_OPTIONS)
        return cls(
            options.url,
            table=options.take("table"),
            mode=options.take("mode", "state", str),
            create=options.take("create", True, parse_bool),
            columns=options.take("columns", (), parse_columns),
            pool_size=options.take("pool_size", 4, int),
            lock_timeout=options.take("lock_timeout", "5s", str),
            statement_timeout=options.take("statement_timeout", "60s", str),
            tombstone_hours=options.take("tombstone_hours", 48.0, float),
            password=options.secret(),
            name=options.name,
        )

    # --- start and check -----------------------------------------------------------------

    async def start(self, context: SinkContext) -> None:
        """Open the pool, create the tables when missing, check their shape."""
        self.layout = self._layout(context)
        self._rows = RowBuilder(self.name, self.layout, self.transform, context.stream_view_type)
        self._rows.check_view_type()
        await self._open_pool()
        async with self._pool.connection() as conn:
            await self._ensure_tables(conn)
            await self._prune_tombstones(conn)
        self._prepare_statements()

    async def check(self, context: SinkContext) -> list[str]:
        """Connect and check the tables (or the right to create them), writing nothing."""
        try:
            self.layout = self._layout(context)
            RowBuilder(
                self.name, self.layout, self.transform, context.stream_view_type
            ).check_view_type()
            await self._open_pool(size=1)
            async with self._pool.connection() as conn:
                existing = await self._existing_columns(conn)
                if existing:
                    self._check_shape(existing)
                elif not self.create:
                    raise SinkError(
                        self.name, f"table {self._qualified()} does not exist (create=false)"
                    )
                else:
                    await self._check_can_create(conn)
        except SinkError as exc:
            return [str(exc)]
        finally:
            await self.close()
        return []

    def _layout(self, context: SinkContext) -> Layout:
        schema, _, table = (self.table_option or context.table.lower()).rpartition(".")
        return Layout(schema or "public", table, context.key_schema, self.mode, self.columns)

    def _qualified(self) -> str:
        assert self.layout is not None
        return f"{self.layout.schema}.{self.layout.table}"

    async def _open_pool(self, size: int | None = None) -> None:
        from shardline.sinks.postgres_pool import open_pool

        self._pool = await open_pool(self, size or self.pool_size, _STAGE)

    async def _existing_columns(self, conn: Any) -> dict[str, dict[str, str]]:
        assert self.layout is not None
        names = list(self.layout.expected_columns())
        cursor = await conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = ANY(%s)",
            (self.layout.schema, names),
        )
        found: dict[str, dict[str, str]] = {}
        for table, column, data_type in await cursor.fetchall():
            found.setdefault(table, {})[column] = data_type
        return found

    async def _ensure_tables(self, conn: Any) -> None:
        assert self.layout is not None
        existing = await self._existing_columns(conn)
        if existing:
            self._check_shape(existing)
            return
        if not self.create:
            raise SinkError(self.name, f"table {self._qualified()} does not exist (create=false)")
        try:
            async with conn.transaction():
                # workers starting together: one creates, the others wait and find the table
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (self._qualified(),)
                )
                for statement in self.layout.create_statements():
                    await conn.execute(statement)
        except Exception as exc:
            raise sink_error(self.name, exc, f"cannot create table {self._qualified()}") from exc
        log.info("sink %s: created table %s (%s mode)", self.name, self._qualified(), self.mode)

    def _check_shape(self, existing: dict[str, dict[str, str]]) -> None:
        assert self.layout is not None
        for table, expected in self.layout.expected_columns().items():
            have = existing.get(table)
            if have is None:
                raise SinkError(self.name, f"table {self.layout.schema}.{table} is missing")
            problems = [
                f"column {column} is missing"
                if column not in have
                else f"column {column} is {have[column]}, expected {wanted}"
                for column, wanted in expected.items()
                if have.get(column) != wanted
            ]
            if problems:
                raise SinkError(
                    self.name,
                    f"table {self.layout.schema}.{table} does not match this sink "
                    f"({self.mode} mode): {'; '.join(problems)}",
                )

    async def _check_can_create(self, conn: Any) -> None:
        assert self.layout is not None
        cursor = await conn.execute(
            "SELECT has_schema_privilege(current_user, %s, 'CREATE')", (self.layout.schema,)
        )
        row = await cursor.fetchone()
        if not row or not row[0]:
            raise SinkError(
                self.name,
                f"no table {self._qualified()} and no right to create it in schema "
                f"{self.layout.schema}",
            )

    async def _prune_tombstones(self, conn: Any) -> None:
        if self.layout is None or self.mode != "state":
            return
        async with conn.transaction():
            await conn.execute(self.layout.prune_tombstones(), (self.tombstone_hours,))

    def _prepare_statements(self) -> None:
        assert self.layout is not None
        self._merge = self.layout.merge_statement(_STAGE)
        self._copy = self.layout.copy_statement(_STAGE)

    # --- writing -------------------------------------------------------------------------

    def open_shard(self, shard_id: str) -> ShardSink:
        """A writer for one shard; shards share the connection pool."""
        return _PostgresShard(self, shard_id)

    async def write_changes(self, records: Sequence[StreamRecord]) -> None:
        """Write one shard's batch in one transaction (see the module's docstring)."""
        assert self._rows is not None, "start() first"
        rows = self._rows.rows(records)
        if rows:
            await self._write_rows(rows)

    async def write_snapshot(self, rows: Sequence[SnapshotRow]) -> None:
        """Write snapshot rows: older than any change, so they never replace one."""
        assert self._rows is not None, "start() first"
        staged = self._rows.snapshot_rows(rows)
        if staged:
            await self._write_rows(staged)

    async def _write_rows(self, rows: list[tuple[Any, ...]]) -> None:
        try:
            async with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor() as cursor,
            ):
                async with cursor.copy(self._copy) as copy:
                    for row in rows:
                        await copy.write_row(row)
                await cursor.execute(self._merge)
        except SinkError:
            raise
        except Exception as exc:
            raise sink_error(self.name, exc) from exc

    async def close(self) -> None:
        """Close the pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


class _PostgresShard(ShardSink):
    def __init__(self, sink: PostgresSink, shard_id: str) -> None:
        self.sink = sink
        self.shard_id = shard_id

    async def write(self, records: Sequence[StreamRecord]) -> None:
        self.refuse_if_lost(f"shard {self.shard_id}")
        await self.sink.write_changes(records)


def parse_columns(value: Any) -> tuple[PromotedColumn, ...]:
    """``price:numeric,status`` (or a list of such) -> promoted columns (default type text)."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    columns = []
    for item in items:
        attribute, _, sql_type = str(item).strip().partition(":")
        sql_type = sql_type.strip().lower() or "text"
        if not attribute:
            raise ValueError("empty column name")
        if sql_type not in PROMOTABLE_TYPES:
            raise ValueError(f"type {sql_type!r} is not one of {', '.join(PROMOTABLE_TYPES)}")
        columns.append(PromotedColumn(attribute.strip(), sql_type))
    return tuple(columns)


def sink_error(name: str, exc: BaseException, doing: str = "write failed") -> SinkError:
    """A psycopg error as a :class:`SinkError`, retriable when the database pushed back."""
    state = getattr(exc, "sqlstate", None) or ""
    retriable = _is_pushback(exc, state)
    text = " ".join(str(exc).split()) or type(exc).__name__
    where = f" [{state}]" if state else ""
    return SinkError(name, f"{doing}: {text}{where}", retriable=retriable)


def _is_pushback(exc: BaseException, state: str) -> bool:
    import psycopg
    import psycopg_pool

    if isinstance(exc, psycopg_pool.PoolTimeout | OSError | TimeoutError):
        return True
    if state:
        return state.startswith(_RETRIABLE_STATES)
    return isinstance(exc, psycopg.OperationalError) and not _is_auth_failure(exc)


def _is_auth_failure(exc: BaseException) -> bool:
    text = str(exc)
    return "password authentication failed" in text or "no password supplied" in text
