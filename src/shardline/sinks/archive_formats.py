"""One archived file's bytes: changes as JSON Lines (none/gzip/zstd) or Parquet (pyarrow).

Every format has the same columns, the contract readers rely on:

=========================== ===============================================================
``event_id``                the record's ``eventID``
``event_name``              ``INSERT``, ``MODIFY``, ``REMOVE``
``keys``                    the item's key, JSON text
``sequence_number``         the change's sequence number, decimal digits as sent (compare
                            with ``lpad(sequence_number, 40, '0')``)
``shard_id``                the shard it was read from
``approximate_creation_time`` when it was made (UTC, millisecond precision)
``ttl_delete``              whether DynamoDB's time to live removed the item
``stream_view_type``        what the stream carries (``NEW_AND_OLD_IMAGES``, ...)
``old_image``, ``new_image`` the item before / after, JSON text (null when absent)
=========================== ===============================================================

Keys and images are DynamoDB's typed JSON (``{"id":{"S":"a"}}``) by default, so nothing
is lost; ``images=plain`` writes plain JSON (:mod:`shardline.sinks.values`). Parquet may
add typed columns for chosen attributes (``columns=price:double,status:string``).
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from shardline.records import StreamRecord
from shardline.sinks.changes import is_ttl_delete
from shardline.sinks.values import dumps_document, plain_item_json

__all__ = [
    "COLUMNS",
    "COLUMN_TYPES",
    "Encoder",
    "TypedColumn",
    "change_columns",
    "make_encoder",
    "parse_columns",
]

COLUMNS = (
    "event_id",
    "event_name",
    "keys",
    "sequence_number",
    "shard_id",
    "approximate_creation_time",
    "ttl_delete",
    "stream_view_type",
    "old_image",
    "new_image",
)
#: ``columns=`` types and the Parquet type each becomes.
COLUMN_TYPES = ("string", "bigint", "double", "boolean", "json")
#: Rows encoded at a time: the encoder's memory is one chunk's Python values, not a file's.
CHUNK_ROWS = 16_384
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")

Transform = Callable[[StreamRecord], "dict[str, Any] | None"]


@dataclass(frozen=True)
class TypedColumn:
    """An item attribute promoted to its own Parquet column (from the new image, or the
    old one for a REMOVE)."""

    name: str
    type: str


def parse_columns(spec: str) -> tuple[TypedColumn, ...]:
    """``price:double,status`` (type ``string`` by default); raises :class:`ValueError`.

    A name must be a plain identifier that is none of the fixed columns: Spark, Hive and
    Athena refuse spaces and ``,;{}()=`` in Parquet column names, and compare names
    without case.
    """
    columns: list[TypedColumn] = []
    seen = {c.lower() for c in COLUMNS}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, kind = part.partition(":")
        name, kind = name.strip(), (kind.strip().lower() or "string")
        if not _SAFE_NAME.match(name):
            raise ValueError(
                f"{name!r} cannot be a Parquet column (Spark, Hive and Athena take letters, "
                "digits and _ only); write the attribute to new_image instead"
            )
        if name.lower() in seen:
            raise ValueError(f"column {name!r} is already a column of the archive")
        if kind not in COLUMN_TYPES:
            raise ValueError(f"column {name}: type {kind!r} is not one of {COLUMN_TYPES}")
        seen.add(name.lower())
        columns.append(TypedColumn(name, kind))
    return tuple(columns)


def _image_text(raw: Any, plain: bool) -> str | None:
    if not raw:
        return None
    return plain_item_json(raw).decode() if plain else bytes(raw).decode()


def _image_bytes(raw: Any, plain: bool) -> bytes | None:
    if not raw:
        return None
    return plain_item_json(raw) if plain else bytes(raw)


#: The columns :func:`change_columns` gives as UTF-8 bytes with ``as_bytes``.
JSON_COLUMNS = ("keys", "old_image", "new_image")


def change_columns(
    records: Sequence[StreamRecord],
    *,
    plain: bool,
    transform: Transform | None = None,
    as_bytes: bool = False,
) -> tuple[dict[str, list[Any]], list[StreamRecord]]:
    """The archive's columns of ``records`` and the records kept (the transform may drop some).

    ``approximate_creation_time`` is in epoch milliseconds here. With a transform, its
    document becomes ``new_image`` (plain JSON). With ``as_bytes`` the JSON columns are
    UTF-8 bytes rather than text (Parquet takes them without a decode).
    """
    image = _image_bytes if as_bytes else _image_text
    out: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    kept: list[StreamRecord] = []
    for record in records:
        wire = record.wire
        data = wire.dynamodb
        new_image = image(data.NewImage, plain)
        if transform is not None and wire.eventName != "REMOVE":
            document = transform(record)
            if document is None:
                continue
            text = dumps_document(document)
            new_image = text if as_bytes else text.decode()
        kept.append(record)
        out["event_id"].append(wire.eventID)
        out["event_name"].append(wire.eventName)
        out["keys"].append(image(data.Keys, plain) or ("{}" if not as_bytes else b"{}"))
        out["sequence_number"].append(data.SequenceNumber)
        out["shard_id"].append(record.shard_id)
        out["approximate_creation_time"].append(
            int(float(data.ApproximateCreationDateTime or 0) * 1000)
        )
        out["ttl_delete"].append(is_ttl_delete(record))
        out["stream_view_type"].append(data.StreamViewType)
        out["old_image"].append(image(data.OldImage, plain))
        out["new_image"].append(new_image)
    return out, kept


class Encoder:
    """Changes to one file's bytes. ``extension`` ends the file name."""

    extension: str = ""

    def encode(self, records: Sequence[StreamRecord]) -> tuple[bytes, int]:
        """The file's bytes and how many rows it holds (0: nothing to write)."""
        raise NotImplementedError


class JsonLinesEncoder(Encoder):
    """One JSON object per line, compressed as a whole (``gzip`` by default)."""

    def __init__(self, compression: str, plain: bool, transform: Transform | None) -> None:
        self.compression = compression
        self.plain = plain
        self.transform = transform
        self.extension = {"none": "jsonl", "gzip": "jsonl.gz", "zstd": "jsonl.zst"}[compression]
        self._zstd: Any = None
        if compression == "zstd":
            import zstandard

            self._zstd = zstandard.ZstdCompressor(level=3)

    def encode(self, records: Sequence[StreamRecord]) -> tuple[bytes, int]:
        out = io.BytesIO()
        stream: Any = out
        if self.compression == "gzip":
            stream = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0)
        elif self._zstd is not None:
            stream = self._zstd.stream_writer(out, closefd=False)
        rows = 0
        for start in range(0, len(records), CHUNK_ROWS):  # memory: one chunk's rows at a time
            body, count = self._lines(records[start : start + CHUNK_ROWS])
            stream.write(body)
            rows += count
        if stream is not out:
            stream.close()
        return out.getvalue(), rows

    def _lines(self, records: Sequence[StreamRecord]) -> tuple[bytes, int]:
        columns, _ = change_columns(records, plain=self.plain, transform=self.transform)
        times = columns["approximate_creation_time"]
        columns["approximate_creation_time"] = [_iso(ms) for ms in times]
        dumps = orjson.dumps
        lines = [
            dumps(dict(zip(COLUMNS, values, strict=True)))
            for values in zip(*(columns[c] for c in COLUMNS), strict=True)
        ]
        return (b"\n".join(lines) + b"\n" if lines else b""), len(lines)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


class ParquetEncoder(Encoder):
    """One Parquet file (a row group per ``CHUNK_ROWS`` rows), ``zstd`` by default."""

    extension = "parquet"

    def __init__(
        self,
        compression: str,
        plain: bool,
        transform: Transform | None,
        columns: tuple[TypedColumn, ...] = (),
        describe: Callable[[StreamRecord], str] = repr,
    ) -> None:
        import pyarrow as pa

        self.compression = compression
        self.plain = plain
        self.transform = transform
        self.columns = columns
        self.describe = describe
        arrow = {"string": pa.string(), "bigint": pa.int64(), "double": pa.float64(),
                 "boolean": pa.bool_(), "json": pa.string()}  # fmt: skip
        fields = [
            pa.field("event_id", pa.string()),
            pa.field("event_name", pa.string()),
            pa.field("keys", pa.string()),
            pa.field("sequence_number", pa.string()),
            pa.field("shard_id", pa.string()),
            pa.field("approximate_creation_time", pa.timestamp("ms", tz="UTC")),
            pa.field("ttl_delete", pa.bool_()),
            pa.field("stream_view_type", pa.string()),
            pa.field("old_image", pa.string()),
            pa.field("new_image", pa.string()),
        ]
        fields += [pa.field(c.name, arrow[c.type]) for c in columns]
        self.schema = pa.schema(fields)

    def encode(self, records: Sequence[StreamRecord]) -> tuple[bytes, int]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = pa.BufferOutputStream()
        compression = None if self.compression == "none" else self.compression
        writer: Any = None
        rows = 0
        for start in range(0, len(records), CHUNK_ROWS):  # one row group at a time
            table = self._table(records[start : start + CHUNK_ROWS])
            if table.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(out, self.schema, compression=compression)
            writer.write_table(table, row_group_size=CHUNK_ROWS)
            rows += table.num_rows
        if writer is None:
            return b"", 0
        writer.close()
        return out.getvalue().to_pybytes(), rows

    def _table(self, records: Sequence[StreamRecord]) -> Any:
        import pyarrow as pa

        data, kept = change_columns(
            records, plain=self.plain, transform=self.transform, as_bytes=True
        )
        for column in self.columns:
            data[column.name] = [self._typed(r, column) for r in kept]
        arrays = [
            _json_text(data[f.name]) if f.name in JSON_COLUMNS else pa.array(data[f.name], f.type)
            for f in self.schema
        ]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _typed(self, record: StreamRecord, column: TypedColumn) -> Any:
        image = record.old_image if record.event_name == "REMOVE" else record.new_image
        if not image or column.name not in image:
            return None
        value = image[column.name]
        try:
            return _convert(value, column.type)
        except (TypeError, ValueError, InvalidOperation) as exc:
            raise ValueError(
                f"{self.describe(record)}: attribute {column.name} ({value!r}) "
                f"is not a {column.type}"
            ) from exc


def _json_text(values: list[bytes | None]) -> Any:
    """UTF-8 bytes as a string column: built as binary (no per-value decode), then checked
    to be valid UTF-8 in one pass."""
    import pyarrow as pa

    array = pa.array(values, pa.binary()).view(pa.string())
    try:
        array.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"a change holds text that is not UTF-8: {exc}") from exc
    return array


def _convert(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "json":
        return dumps_document({"v": value}).decode()[5:-1]
    if kind == "string":
        if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
            return str(value)
        raise TypeError("not a string")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise TypeError("not a boolean")
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError("not a number")
    if kind == "bigint":
        number = Decimal(value)
        if number != number.to_integral_value() or not -(2**63) <= number < 2**63:
            raise ValueError("not a 64-bit integer")
        return int(number)
    return float(value)


def make_encoder(
    fmt: str,
    compression: str,
    *,
    plain: bool,
    transform: Transform | None = None,
    columns: tuple[TypedColumn, ...] = (),
    describe: Callable[[StreamRecord], str] = repr,
) -> Encoder:
    """The encoder for ``format=jsonl|parquet`` (Parquet needs ``shardline[archive]``)."""
    if fmt == "jsonl":
        return JsonLinesEncoder(compression, plain, transform)
    return ParquetEncoder(compression, plain, transform, columns, describe)
