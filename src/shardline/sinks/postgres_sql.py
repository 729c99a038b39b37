"""The SQL of the PostgreSQL sink, built from the source's key schema (pure, no I/O).

State mode keeps one row per item and a tombstone per deleted key (``<table>_tombstones``);
changelog mode appends every change, unique on (shard, sequence number). Each batch is
copied into a temporary staging table and merged by one statement:

* a REMOVE deletes the row only when the row is older, and records a tombstone;
* an INSERT / MODIFY / snapshot row is written only when it is newer than both the row
  and the key's tombstone.

So no replay, in any order, can move a row back to an older version or bring a deleted
item back.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from shardline.sinks.base import KeyAttribute

__all__ = ["KEY_SQL_TYPES", "PROMOTABLE_TYPES", "Layout", "PromotedColumn"]

KEY_SQL_TYPES = {"S": "text", "N": "numeric", "B": "bytea"}
PROMOTABLE_TYPES = {
    "text": "(_item->>{name})",
    "numeric": "((_item->>{name})::numeric)",
    "bigint": "((_item->>{name})::bigint)",
    "integer": "((_item->>{name})::integer)",
    "double precision": "((_item->>{name})::double precision)",
    "boolean": "((_item->>{name})::boolean)",
    "jsonb": "(_item->{name})",
}

STATE_COLUMNS = (
    ("_item", "jsonb NOT NULL"),
    ("_seq", "numeric(40) NOT NULL"),
    ("_event_name", "text NOT NULL"),
    ("_changed_at", "timestamptz"),
    ("_ttl_delete", "boolean NOT NULL DEFAULT false"),
)
TOMBSTONE_COLUMNS = (
    ("_seq", "numeric(40) NOT NULL"),
    ("_changed_at", "timestamptz"),
    ("_ttl_delete", "boolean NOT NULL DEFAULT false"),
)
CHANGELOG_COLUMNS = (
    ("_event_name", "text NOT NULL"),
    ("_old_item", "jsonb"),
    ("_new_item", "jsonb"),
    ("_seq", "numeric(40) NOT NULL"),
    ("_shard_id", "text NOT NULL"),
    ("_event_id", "text NOT NULL"),
    ("_changed_at", "timestamptz"),
    ("_ttl_delete", "boolean NOT NULL DEFAULT false"),
    ("_written_at", "timestamptz NOT NULL DEFAULT now()"),
)
#: Staged columns after the keys, in COPY order.
STATE_STAGE = ("_item", "_seq", "_event_name", "_changed_at", "_ttl_delete")
CHANGELOG_STAGE = (
    "_event_name",
    "_old_item",
    "_new_item",
    "_seq",
    "_shard_id",
    "_event_id",
    "_changed_at",
    "_ttl_delete",
)


@dataclass(frozen=True)
class PromotedColumn:
    """An item attribute kept also as a typed, generated column (``columns=price:numeric``)."""

    attribute: str
    sql_type: str = "text"


@dataclass(frozen=True)
class Layout:
    """Where and how one sink writes: schema, table, key columns, mode, promoted columns."""

    schema: str
    table: str
    keys: tuple[KeyAttribute, ...]
    mode: str = "state"
    promoted: tuple[PromotedColumn, ...] = ()

    @property
    def tombstones(self) -> str:
        """The tombstone table's name (state mode)."""
        return f"{self.table}_tombstones"

    def _ident(self, table: str) -> sql.Identifier:
        return sql.Identifier(self.schema, table)

    def _key_idents(self) -> list[sql.Identifier]:
        return [sql.Identifier(k.name) for k in self.keys]

    def _key_defs(self) -> list[sql.Composable]:
        return [
            sql.SQL("{} {} NOT NULL").format(sql.Identifier(k.name), sql.SQL(KEY_SQL_TYPES[k.type]))
            for k in self.keys
        ]

    def _columns(self, columns: tuple[tuple[str, str], ...]) -> list[sql.Composable]:
        return [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns]

    def _promoted_defs(self) -> list[sql.Composable]:
        defs: list[sql.Composable] = []
        for column in self.promoted:
            expression = PROMOTABLE_TYPES[column.sql_type].format(name="{}")
            defs.append(
                sql.SQL("{} {} GENERATED ALWAYS AS ({}) STORED").format(
                    sql.Identifier(column.attribute),
                    sql.SQL(column.sql_type),
                    sql.SQL(expression).format(sql.Literal(column.attribute)),
                )
            )
        return defs

    def create_statements(self) -> list[sql.Composed]:
        """``CREATE TABLE IF NOT EXISTS`` for the table (and the tombstones in state mode)."""
        keys = sql.SQL(", ").join(self._key_idents())
        if self.mode == "changelog":
            body = self._key_defs() + self._columns(CHANGELOG_COLUMNS)
            unique = sql.SQL("UNIQUE (_shard_id, _seq)")
            return [
                sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, {})").format(
                    self._ident(self.table), sql.SQL(", ").join(body), unique
                )
            ]
        body = self._key_defs() + self._columns(STATE_COLUMNS) + self._promoted_defs()
        tomb = self._key_defs() + self._columns(TOMBSTONE_COLUMNS)
        return [
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
                self._ident(self.table), sql.SQL(", ").join(body), keys
            ),
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
                self._ident(self.tombstones), sql.SQL(", ").join(tomb), keys
            ),
        ]

    def expected_columns(self) -> dict[str, dict[str, str]]:
        """Table name -> column -> the type ``information_schema`` reports for it."""
        keys = {k.name: KEY_SQL_TYPES[k.type] for k in self.keys}
        if self.mode == "changelog":
            return {self.table: keys | _reported(CHANGELOG_COLUMNS)}
        promoted = {c.attribute: c.sql_type for c in self.promoted}
        return {
            self.table: keys | _reported(STATE_COLUMNS) | promoted,
            self.tombstones: keys | _reported(TOMBSTONE_COLUMNS),
        }

    def stage_columns(self) -> tuple[str, ...]:
        """The staging table's columns in COPY order."""
        rest = CHANGELOG_STAGE if self.mode == "changelog" else STATE_STAGE
        return tuple(k.name for k in self.keys) + rest

    def create_stage(self, stage: str) -> sql.Composed:
        """A temporary staging table emptied at every commit."""
        defs = self._key_defs()
        columns = CHANGELOG_COLUMNS if self.mode == "changelog" else STATE_COLUMNS
        wanted = set(self.stage_columns())
        defs += [
            sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t.replace(" NOT NULL", "")))
            for n, t in columns
            if n in wanted
        ]
        return sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
            sql.Identifier(stage), sql.SQL(", ").join(defs)
        )

    def copy_statement(self, stage: str) -> sql.Composed:
        """``COPY stage (...) FROM STDIN``."""
        return sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(stage), sql.SQL(", ").join(map(sql.Identifier, self.stage_columns()))
        )

    def merge_statement(self, stage: str) -> sql.Composed:
        """The one statement that applies a staged batch (see the module's docstring)."""
        if self.mode == "changelog":
            return self._append(stage)
        return self._guarded_merge(stage)

    def _key_match(self, left: str, right: str) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}.{}").format(
                sql.Identifier(left),
                sql.Identifier(k.name),
                sql.Identifier(right),
                sql.Identifier(k.name),
            )
            for k in self.keys
        )

    def _guarded_merge(self, stage: str) -> sql.Composed:
        keys = sql.SQL(", ").join(self._key_idents())
        s_keys = sql.SQL(", ").join(sql.SQL("s.{}").format(i) for i in self._key_idents())
        template = """
WITH removed AS (
    DELETE FROM {table} AS t USING {stage} AS s
    WHERE s._event_name = 'REMOVE' AND {t_s} AND t._seq < s._seq
), tombstoned AS (
    INSERT INTO {tombs} AS d ({keys}, _seq, _changed_at, _ttl_delete)
    SELECT {s_keys}, s._seq, s._changed_at, s._ttl_delete FROM {stage} AS s
    WHERE s._event_name = 'REMOVE'
    ON CONFLICT ({keys}) DO UPDATE
    SET _seq = EXCLUDED._seq, _changed_at = EXCLUDED._changed_at,
        _ttl_delete = EXCLUDED._ttl_delete
    WHERE d._seq < EXCLUDED._seq
)
INSERT INTO {table} AS t ({keys}, _item, _seq, _event_name, _changed_at, _ttl_delete)
SELECT {s_keys}, s._item, s._seq, s._event_name, s._changed_at, false FROM {stage} AS s
WHERE s._event_name <> 'REMOVE'
  AND NOT EXISTS (SELECT 1 FROM {tombs} AS d WHERE {d_s} AND d._seq >= s._seq)
ON CONFLICT ({keys}) DO UPDATE
SET _item = EXCLUDED._item, _seq = EXCLUDED._seq, _event_name = EXCLUDED._event_name,
    _changed_at = EXCLUDED._changed_at, _ttl_delete = false
WHERE t._seq < EXCLUDED._seq
"""
        return sql.SQL(template).format(
            table=self._ident(self.table),
            tombs=self._ident(self.tombstones),
            stage=sql.Identifier(stage),
            keys=keys,
            s_keys=s_keys,
            t_s=self._key_match("t", "s"),
            d_s=self._key_match("d", "s"),
        )

    def _append(self, stage: str) -> sql.Composed:
        columns = sql.SQL(", ").join(map(sql.Identifier, self.stage_columns()))
        return sql.SQL(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage} "
            "ON CONFLICT (_shard_id, _seq) DO NOTHING"
        ).format(table=self._ident(self.table), columns=columns, stage=sql.Identifier(stage))

    def prune_tombstones(self) -> sql.Composed:
        """Delete tombstones older than ``%s`` hours (no replay can reach back that far)."""
        return sql.SQL("DELETE FROM {} WHERE _changed_at < now() - %s * interval '1 hour'").format(
            self._ident(self.tombstones)
        )


def _reported(columns: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Column types as ``information_schema.columns.data_type`` spells them."""
    reported = {}
    for name, definition in columns:
        base = definition.split(" NOT NULL")[0].split(" DEFAULT")[0]
        base = base.split("(")[0]
        reported[name] = {"timestamptz": "timestamp with time zone"}.get(base, base)
    return reported
