"""A pure, in-memory model of one DynamoDB stream: its shard graph and its records.

The graph knows nothing about moto or HTTP. It owns:

* shards, each with a hash-key range, a sequence-number range and an optional parent;
* the record log of every shard (records are opaque, already-encoded ``bytes``);
* one stream-wide sequence counter, so sequence numbers increase strictly across
  the whole stream, and each shard's records fall inside its own range.

Writes are routed to the open shard whose hash-key range holds the md5 of the
partition key. A split halves a shard's range between two children; a rollover
gives each child its parent's whole range. Either way the open shards always
partition the hash-key space, and a key's next shard is a descendant of its last.

Two behaviours of the real service can be switched on for tests:

* a parent may stay open for a while after its children appear (``parent_open``):
  writes keep going to the parent until :meth:`ShardGraph.close_pending` closes it;
* retention (:meth:`ShardGraph.expire`): records older than the retention are trimmed,
  and closed shards older than it leave the graph, as DynamoDB does after 24 hours.

Every public method takes the graph's lock, so one graph may be shared by threads.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

HASH_KEY_MAX = (1 << 128) - 1
FIRST_SEQUENCE_NUMBER = 100_000_000_000_000_000_000  # 21 digits, as AWS's shortest
ITERATOR_TYPES = ("TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")

Encoder = Callable[[str], bytes]
"""Builds a record's wire bytes, given its sequence number as a decimal string."""


class GraphError(Exception):
    """A request the graph cannot answer; ``code`` is the AWS error code to send."""

    code = "ValidationException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ShardNotFoundError(GraphError):
    """The shard id is not part of this stream."""

    code = "ResourceNotFoundException"


class TrimmedDataError(GraphError):
    """The sequence number lies before the start of the shard (trimmed data)."""

    code = "TrimmedDataAccessException"


class InvalidRequestError(GraphError):
    """A parameter is missing or out of range."""

    code = "ValidationException"


def hash_key_of(partition_key: bytes) -> int:
    """The 128-bit hash-key value of a partition key (md5, as DynamoDB does)."""
    return int.from_bytes(hashlib.md5(partition_key).digest(), "big")


@dataclass(eq=False)
class Shard:
    """One shard: its ranges, its lineage and its records (sorted by sequence number)."""

    shard_id: str
    parent_id: str | None
    hash_lo: int
    hash_hi: int
    start_seq: int
    end_seq: int | None = None
    seqs: list[int] = field(default_factory=list)
    records: list[bytes] = field(default_factory=list)
    times: list[int] = field(default_factory=list)  # arrival time of each record, ms
    children: list[str] = field(default_factory=list)
    floor: int = -1  # first readable position; moves up when records are trimmed
    created_ms: int = 0
    closed_ms: int | None = None

    def __post_init__(self) -> None:
        if self.floor < 0:
            self.floor = self.start_seq

    @property
    def is_open(self) -> bool:
        """Open shards take writes; closed ones have an ending sequence number."""
        return self.end_seq is None

    def covers(self, hash_key: int) -> bool:
        """Whether ``hash_key`` is inside this shard's hash-key range."""
        return self.hash_lo <= hash_key <= self.hash_hi

    def to_wire(self) -> dict[str, Any]:
        """The shard as DescribeStream reports it."""
        seq_range = {"StartingSequenceNumber": str(self.start_seq)}
        if self.end_seq is not None:
            seq_range["EndingSequenceNumber"] = str(self.end_seq)
        wire: dict[str, Any] = {"ShardId": self.shard_id, "SequenceNumberRange": seq_range}
        if self.parent_id is not None:
            wire["ParentShardId"] = self.parent_id
        return wire


@dataclass(frozen=True, slots=True)
class Page:
    """One read: encoded records, and where the next read starts (None at shard end)."""

    records: list[bytes]
    next_position: int | None


@dataclass(frozen=True, slots=True)
class ShardListing:
    """One DescribeStream page of wire-shaped shards."""

    shards: list[dict[str, Any]]
    last_evaluated_shard_id: str | None


class ShardGraph:
    """The shard graph and record log of one stream."""

    def __init__(
        self,
        *,
        clock_ms: Callable[[], int] | None = None,
        rng: random.Random | None = None,
        first_sequence_number: int = FIRST_SEQUENCE_NUMBER,
    ) -> None:
        self._lock = threading.RLock()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._rng = rng or random.Random()
        self._next_seq = first_sequence_number
        self._shards: dict[str, Shard] = {}  # insertion order == creation order
        self._new_shard(None, 0, HASH_KEY_MAX)

    # --- writes -------------------------------------------------------------------

    def append(self, partition_key: bytes, encode: Encoder) -> str:
        """Add one record to the open shard that owns ``partition_key``; return its seq."""
        hash_key = hash_key_of(partition_key)
        with self._lock:
            shard = self._route(hash_key)
            seq = self._take_seq()
            shard.seqs.append(seq)
            shard.records.append(encode(str(seq)))
            shard.times.append(self._clock_ms())
            return str(seq)

    def rollover(self, shard_id: str | None = None, *, parent_open: bool = False) -> list[str]:
        """Close every open shard (or only ``shard_id``); each gets one child with the
        same hash-key range.

        With ``parent_open`` the parents stay open (and keep taking writes) until
        :meth:`close_pending`, while their children are already listed.
        """
        with self._lock:
            self._close_pending()
            shards = [self._shard(shard_id)] if shard_id else self._writable_shards()
            if any(not shard.is_open for shard in shards):
                raise InvalidRequestError(f"Shard {shard_id} is closed")
            return [self._spawn(shard, halves=1, parent_open=parent_open)[0] for shard in shards]

    def split(self, shard_id: str | None = None, *, parent_open: bool = False) -> list[str]:
        """Close one open shard (default: the oldest) and give it two children.

        The children divide the parent's hash-key range into two halves. A shard
        whose range is a single hash key cannot be split. ``parent_open`` as in
        :meth:`rollover`.
        """
        with self._lock:
            self._close_pending()
            shard = self._shard(shard_id) if shard_id else self._oldest_open()
            if not shard.is_open:
                raise InvalidRequestError(f"Shard {shard.shard_id} is closed")
            if shard.hash_lo == shard.hash_hi:
                raise InvalidRequestError(f"Shard {shard.shard_id} is too narrow to split")
            return self._spawn(shard, halves=2, parent_open=parent_open)

    def close_pending(self) -> list[str]:
        """Close the parents left open by ``parent_open``; return their ids."""
        with self._lock:
            return self._close_pending()

    def close_all(self) -> None:
        """Close every open shard without children, as when the stream is disabled."""
        with self._lock:
            for shard in self._open_shards():
                self._mark_closed(shard)

    def expire(self, retention_ms: int) -> int:
        """Trim records older than ``retention_ms`` and drop closed shards older than it.

        A dropped shard leaves the listing and answers ResourceNotFoundException; its
        children keep their ``ParentShardId``, as on AWS. Returns the records trimmed.
        """
        with self._lock:
            cutoff = self._clock_ms() - retention_ms
            trimmed = sum(_trim(shard, cutoff) for shard in self._shards.values())
            gone = [
                shard.shard_id
                for shard in self._shards.values()
                if shard.closed_ms is not None and shard.closed_ms < cutoff and not shard.seqs
            ]
            for shard_id in gone:
                del self._shards[shard_id]
            return trimmed

    # --- reads --------------------------------------------------------------------

    def shards(self) -> list[dict[str, Any]]:
        """Every shard, wire-shaped, in creation order (parents before children)."""
        with self._lock:
            return [shard.to_wire() for shard in self._shards.values()]

    def route(self, partition_key: bytes) -> str:
        """Id of the open shard that a write of ``partition_key`` would go to now."""
        with self._lock:
            return self._route(hash_key_of(partition_key)).shard_id

    def open_shard_ids(self) -> list[str]:
        """Ids of the open shards that take writes, oldest first."""
        with self._lock:
            return [shard.shard_id for shard in self._writable_shards()]

    def describe(
        self,
        *,
        limit: int = 100,
        exclusive_start_shard_id: str | None = None,
        children_of: str | None = None,
        children_first: bool = False,
    ) -> ShardListing:
        """One DescribeStream page: at most ``limit`` shards after the exclusive start.

        ``children_of`` keeps only that shard's children (``ShardFilter CHILD_SHARDS``).
        ``children_first`` lists newest shards first, to test consumers that must
        not rely on parents being listed before their children.
        """
        if not 1 <= limit <= 100:
            raise InvalidRequestError("Limit must be between 1 and 100")
        with self._lock:
            listed = self._listed(children_of, children_first)
            start = self._index_after(listed, exclusive_start_shard_id)
            page = listed[start : start + limit]
            more = start + limit < len(listed)
            return ShardListing(
                shards=[shard.to_wire() for shard in page],
                last_evaluated_shard_id=page[-1].shard_id if more and page else None,
            )

    def position(self, shard_id: str, iterator_type: str, sequence_number: str | None) -> int:
        """The first sequence number a new iterator of ``iterator_type`` would read."""
        if iterator_type not in ITERATOR_TYPES:
            raise InvalidRequestError(f"Unsupported ShardIteratorType: {iterator_type}")
        with self._lock:
            shard = self._shard(shard_id)
            if iterator_type == "TRIM_HORIZON":
                return shard.floor
            if iterator_type == "LATEST":
                return shard.end_seq if shard.end_seq is not None else self._next_seq
            seq = _parse_sequence_number(sequence_number, iterator_type)
            if seq < shard.floor:
                raise TrimmedDataError(
                    f"Sequence number {seq} is before the trim horizon of shard {shard_id}"
                )
            return seq if iterator_type == "AT_SEQUENCE_NUMBER" else seq + 1

    def read(
        self,
        shard_id: str,
        position: int,
        *,
        limit: int,
        max_bytes: int,
        eager_shard_end: bool = True,
    ) -> Page:
        """Records of ``shard_id`` from ``position`` on: at most ``limit`` records and
        ``max_bytes`` bytes (always at least one record when any is there).

        On a closed shard ``next_position`` is None once nothing is left to read;
        with ``eager_shard_end`` already on the page that returns the last records.
        """
        with self._lock:
            shard = self._shard(shard_id)
            if position < shard.floor:
                raise TrimmedDataError(
                    f"Records of shard {shard_id} after the iterator's position were trimmed"
                )
            first = bisect.bisect_left(shard.seqs, position)
            count = _fit(shard.records, first, limit, max_bytes)
            records = shard.records[first : first + count]
            next_position = shard.seqs[first + count - 1] + 1 if count else position
            if shard.is_open:
                return Page(records, next_position)
            drained = first + count >= len(shard.seqs)
            if drained and (eager_shard_end or count == 0):
                return Page(records, None)
            return Page(records, next_position)

    # --- internals ----------------------------------------------------------------

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def _new_shard(self, parent: Shard | None, hash_lo: int, hash_hi: int) -> Shard:
        shard = Shard(
            shard_id=self._new_shard_id(),
            parent_id=parent.shard_id if parent else None,
            hash_lo=hash_lo,
            hash_hi=hash_hi,
            start_seq=self._take_seq(),
            created_ms=self._clock_ms(),
        )
        self._shards[shard.shard_id] = shard
        if parent is not None:
            parent.children.append(shard.shard_id)
        return shard

    def _new_shard_id(self) -> str:
        while True:
            shard_id = f"shardId-{self._clock_ms():020d}-{self._rng.getrandbits(32):08x}"
            if shard_id not in self._shards:
                return shard_id

    def _spawn(self, shard: Shard, *, halves: int, parent_open: bool) -> list[str]:
        if not parent_open:
            self._mark_closed(shard)
        ranges = (
            _halves(shard.hash_lo, shard.hash_hi)
            if halves == 2
            else [(shard.hash_lo, shard.hash_hi)]
        )
        return [self._new_shard(shard, lo, hi).shard_id for lo, hi in ranges]

    def _mark_closed(self, shard: Shard) -> None:
        shard.end_seq = self._take_seq()
        shard.closed_ms = self._clock_ms()

    def _close_pending(self) -> list[str]:
        pending = [shard for shard in self._open_shards() if shard.children]
        for shard in pending:
            self._mark_closed(shard)
        return [shard.shard_id for shard in pending]

    def _route(self, hash_key: int) -> Shard:
        for shard in self._writable_shards():
            if shard.covers(hash_key):
                return shard
        raise InvalidRequestError("The stream has no open shard (it is disabled)")

    def _oldest_open(self) -> Shard:
        for shard in self._writable_shards():
            return shard
        raise InvalidRequestError("The stream has no open shard (it is disabled)")

    def _open_shards(self) -> list[Shard]:
        return [shard for shard in self._shards.values() if shard.is_open]

    def _writable_shards(self) -> list[Shard]:
        """Open shards whose parent is closed (a parent left open takes the writes)."""
        return [shard for shard in self._open_shards() if not self._parent_is_open(shard)]

    def _parent_is_open(self, shard: Shard) -> bool:
        parent = self._shards.get(shard.parent_id) if shard.parent_id else None
        return parent is not None and parent.is_open

    def _shard(self, shard_id: str) -> Shard:
        try:
            return self._shards[shard_id]
        except KeyError:
            raise ShardNotFoundError(f"Shard {shard_id} does not exist") from None

    def _listed(self, children_of: str | None, children_first: bool) -> list[Shard]:
        if children_of is not None:
            children = self._shard(children_of).children
            shards = [self._shards[child] for child in children if child in self._shards]
        else:
            shards = list(self._shards.values())
        return shards[::-1] if children_first else shards

    def _index_after(self, listed: Iterable[Shard], shard_id: str | None) -> int:
        if shard_id is None:
            return 0
        for index, shard in enumerate(listed):
            if shard.shard_id == shard_id:
                return index + 1
        self._shard(shard_id)  # raises when the shard is unknown to the stream
        return 0


def _trim(shard: Shard, cutoff_ms: int) -> int:
    """Drop the shard's records that arrived before ``cutoff_ms``; return how many."""
    count = bisect.bisect_left(shard.times, cutoff_ms)
    if count:
        shard.floor = shard.seqs[count - 1] + 1
        del shard.seqs[:count], shard.records[:count], shard.times[:count]
    return count


def _halves(lo: int, hi: int) -> list[tuple[int, int]]:
    mid = (lo + hi) // 2
    return [(lo, mid), (mid + 1, hi)]


def _fit(records: list[bytes], first: int, limit: int, max_bytes: int) -> int:
    """How many records from ``first`` fit in ``limit`` and ``max_bytes`` (at least 1)."""
    end = min(len(records), first + limit)
    total = 0
    for index in range(first, end):
        total += len(records[index])
        if total > max_bytes and index > first:
            return index - first
    return max(0, end - first)


def _parse_sequence_number(value: str | None, iterator_type: str) -> int:
    if value is None:
        raise InvalidRequestError(f"SequenceNumber is required for {iterator_type}")
    if not (isinstance(value, str) and value.isdigit()):
        raise InvalidRequestError(f"Invalid SequenceNumber: {value!r}")
    return int(value)
