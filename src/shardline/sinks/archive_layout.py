"""Pure: where an archived change goes -- partition paths, file names, what to list on resume.

An archive is Hive-style partitions by the change's time, one file per shard and range
of sequence numbers::

    table=Orders/date=2026-11-30/hour=13/<shard id>__<first seq>__<last seq>.parquet

Sequence numbers are zero-padded to 40 digits, so names sort by position and the name
alone tells which changes a file holds. Nothing here touches a disk or the network.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shardline.records import StreamRecord

__all__ = [
    "GRANULARITIES",
    "ArchiveFile",
    "file_name",
    "listing_prefixes",
    "parse_file_name",
    "partition_of",
    "split_by_partition",
    "temporary_name",
]

#: ``partition_by`` values: the finest time partition of the layout.
GRANULARITIES = ("hour", "day", "month", "none")

_NAME = re.compile(
    r"^(?P<shard>[A-Za-z0-9._-]+)__(?P<first>\d{40})__(?P<last>\d{40})\.(?P<ext>.+)$"
)


@dataclass(frozen=True, order=True)
class ArchiveFile:
    """A published file's place in its shard: ``first`` and ``last`` sequence numbers."""

    first: int
    last: int
    shard_id: str
    path: str


def pad(sequence_number: str | int) -> str:
    """A sequence number as 40 digits (string order is number order)."""
    return str(int(sequence_number)).zfill(40)


def file_name(shard_id: str, first: str, last: str, extension: str) -> str:
    """``<shard>__<first:40>__<last:40>.<extension>``."""
    return f"{shard_id}__{pad(first)}__{pad(last)}.{extension}"


def parse_file_name(name: str) -> tuple[str, int, int] | None:
    """``(shard, first, last)`` of an archive file name; ``None`` for anything else."""
    match = _NAME.match(name)
    if match is None:
        return None
    return match["shard"], int(match["first"]), int(match["last"])


def temporary_name(name: str, token: str) -> str:
    """A hidden name beside the final one: readers skip names starting with ``.``."""
    return f".{name}.{token}.tmp"


def partition_of(table: str, seconds: float, granularity: str) -> str:
    """``table=T/date=YYYY-MM-DD/hour=HH`` (or coarser) of a change made at ``seconds``."""
    parts = [f"table={table}"]
    if granularity == "none":
        return parts[0]
    when = datetime.fromtimestamp(seconds, tz=UTC)
    if granularity == "month":
        parts.append(f"month={when:%Y-%m}")
        return "/".join(parts)
    parts.append(f"date={when:%Y-%m-%d}")
    if granularity == "hour":
        parts.append(f"hour={when:%H}")
    return "/".join(parts)


def split_by_partition(
    records: Sequence[StreamRecord], table: str, granularity: str
) -> list[tuple[str, list[StreamRecord]]]:
    """Consecutive runs of ``records`` in one partition each, order kept.

    A batch crossing an hour becomes two files; a clock that steps back makes more runs
    rather than reordering, so every file holds a contiguous range of the shard.
    """
    runs: list[tuple[str, list[StreamRecord]]] = []
    hours: dict[int, str] = {}  # UTC hours nest in days and months: one lookup per hour
    for record in records:
        hour = int(record.approximate_creation_seconds // 3600)
        partition = hours.get(hour)
        if partition is None:
            partition = hours[hour] = partition_of(table, hour * 3600, granularity)
        if runs and runs[-1][0] == partition:
            runs[-1][1].append(record)
        else:
            runs.append((partition, [record]))
    return runs


def listing_prefixes(table: str, since: float, until: float, granularity: str) -> list[str]:
    """The directory prefixes that may hold a shard's files made between the two times.

    A new owner lists these to find the highest sequence number already archived. Whole
    days (or months) are listed, from a day before ``since`` to a day after ``until``, so
    rounding of change times and clocks a little apart cannot hide a file.
    """
    if granularity == "none":
        return [f"table={table}/"]
    start = datetime.fromtimestamp(max(since - 86_400, 0), tz=UTC).date()
    end = datetime.fromtimestamp(until + 86_400, tz=UTC).date()
    prefixes: list[str] = []
    day = start
    while day <= end:
        if granularity == "month":
            prefix = f"table={table}/month={day:%Y-%m}/"
        else:
            prefix = f"table={table}/date={day:%Y-%m-%d}/"
        if prefix not in prefixes:
            prefixes.append(prefix)
        day += timedelta(days=1)
    return prefixes


def highest_archived(files: Sequence[ArchiveFile], shard_id: str) -> int:
    """The last sequence number of ``shard_id`` any file holds (-1: none)."""
    return max((f.last for f in files if f.shard_id == shard_id), default=-1)
