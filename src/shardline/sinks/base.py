"""The sink contract: how a built-in (or user-written) target receives a stream's changes.

A :class:`Sink` is one target of one run (a PostgreSQL table, a DynamoDB table, ...). It
owns what is shared across shards -- connections, the target's schema -- and hands out one
:class:`ShardSink` per shard lease, as a processor is made per lease. The rules between
every sink and the delivery path (:mod:`shardline.sinks.fanout`), numbered as in
docs/sinks.md:

1. **A write is a flush.** :meth:`ShardSink.write` returns only when the batch is durable
   in the target; only then is the batch checkpointed. A write that raises is not
   checkpointed: the batch is retried (and bisected, and given up to ``on_failure``) by
   the existing delivery controls.
2. **Idempotent under replay.** After a crash the records since the last checkpoint are
   delivered again; writing them twice must leave the target as writing them once did
   (replicas compare sequence numbers, changelogs are unique on shard and sequence).
   Sinks that send messages cannot take one back: they deliver at least once and send a
   replayed change with the same id (its event id), for the receiver to drop the copy.
3. **Never older over newer.** A replica row is only replaced by a change with a higher
   sequence number; snapshot rows count as older than any stream change.
4. **Push-back is not failure.** A target that is busy (throttled, locked, unreachable for
   a moment) raises :class:`SinkError` with ``retriable=True`` (and ``retry_after`` when
   the target said how long): the shard waits and tries
   again, without limit and without counting towards ``maximum_retry_attempts``. Anything
   else (a value the target cannot hold, a wrong schema) is permanent and takes the
   failure path.
5. **Lease loss stops writes.** :meth:`ShardSink.close` with ``lost=True`` is called when
   the lease is gone; the sink must not start another write for that shard.
6. **Fan-out.** With several sinks (and/or a handler), the handler runs first, then every
   sink writes the batch concurrently; the batch is checkpointed when all of them hold
   it, and retried for all when one fails (rule 2 makes that safe).
7. **A sink may size its batches.** :attr:`Sink.batch_hint` (a :class:`BatchHint`) asks for
   batches of up to so many records / bytes, cut at least every so many seconds (an
   archive writes one file per batch). The hint applies when the run's ``batch_size`` and
   batching window are left at their defaults; with several hints the smallest value of
   each wins. ``ordered`` hints need ``parallelization_factor`` 1: the sink relies on
   each shard's batches coming one after another in sequence order.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shardline.errors import ShardlineError, ShutdownError
from shardline.records import StreamRecord

__all__ = [
    "BatchHint",
    "KeyAttribute",
    "ShardSink",
    "Sink",
    "SinkContext",
    "SinkError",
    "SnapshotRow",
    "Transform",
]

Transform = Callable[[StreamRecord], "dict[str, Any] | None"]
"""A user function from a change to the document to write, or ``None`` to skip it."""


class SinkError(ShardlineError):
    """A sink could not make a batch durable.

    ``sink`` names the sink (its URL with secrets masked). ``retriable`` says whether the
    target pushed back (try again later) or the data can never be written as it is.
    ``retry_after`` (seconds, push-back only) is how long the target asked to be left
    alone (an HTTP ``Retry-After``): the shard waits at least that long before writing
    again.
    """

    def __init__(
        self,
        sink: str,
        message: str,
        *,
        retriable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.sink = sink
        self.retriable = retriable
        self.retry_after = retry_after
        super().__init__(f"sink {sink}: {message}")


@dataclass(frozen=True)
class BatchHint:
    """The batches a sink would like: at most ``records`` / ``bytes`` (record sizes as
    the stream reports them), cut at least every ``seconds``; ``None``: no wish.

    ``ordered``: the sink needs one batch of a shard at a time, in sequence order
    (``parallelization_factor`` 1).
    """

    records: int | None = None
    bytes: int | None = None
    seconds: float | None = None
    ordered: bool = False


@dataclass(frozen=True)
class KeyAttribute:
    """One attribute of the source table's primary key: ``name`` and type ``S``/``N``/``B``."""

    name: str
    type: str
    role: str = "HASH"  # or RANGE


@dataclass(frozen=True)
class SinkContext:
    """What a sink learns about the source when the worker starts.

    ``key_schema`` lists the source table's key attributes (hash first). ``stream_arn``
    and ``table`` name the source; ``application`` the lease table's application;
    ``stream_view_type`` what the stream's records carry (``NEW_AND_OLD_IMAGES``, ...).
    """

    table: str
    stream_arn: str
    key_schema: tuple[KeyAttribute, ...]
    application: str
    region: str = ""
    stream_view_type: str = ""
    #: The source's AWS settings (:class:`~shardline.aws.settings.AwsSettings`); AWS sinks
    #: default to them, so a local stack's endpoint serves the target too.
    aws: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def key_names(self) -> tuple[str, ...]:
        """The key attribute names, hash key first."""
        return tuple(k.name for k in self.key_schema)


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """One item read by the snapshot scan, in DynamoDB JSON (``{"id": {"S": "a"}}``).

    ``segment`` and ``ordinal`` place it in the scan: the row is the ``ordinal``-th item of
    its segment, the same after a resumed scan. Snapshot rows are older than any change.
    """

    item: dict[str, Any]
    segment: int
    ordinal: int


class ShardSink(abc.ABC):
    """One shard lease's writer into a :class:`Sink`'s target.

    Rule 5 is kept here for every sink: :meth:`close` with ``lost=True`` sets :attr:`lost`
    for good, and a writer calls :meth:`refuse_if_lost` before it writes.
    """

    #: The lease is gone (another worker has it): no further write for this shard.
    lost: bool = False

    @abc.abstractmethod
    async def write(self, records: Sequence[StreamRecord]) -> None:
        """Make ``records`` (one shard's, in shard order) durable; raise :class:`SinkError`."""

    async def close(self, *, lost: bool) -> None:
        """The lease ended: ``lost`` (another worker has it) or released cleanly."""
        self.lost = self.lost or lost

    def refuse_if_lost(self, what: str) -> None:
        """Raise :class:`ShutdownError` (the delivery path's lease-lost signal) if lost."""
        if self.lost:
            raise ShutdownError(f"{what}: the lease was lost; not writing")


class Sink(abc.ABC):
    """One target of a run. Subclasses set :attr:`name` (the URL, secrets masked)."""

    name: str = "sink"
    #: Whether this sink wants the table copied before the stream (``snapshot=true``).
    snapshot: bool = False
    #: The user's transform (``transform=module:function``), applied by the sink.
    transform: Transform | None = None
    #: Lambda filter patterns choosing this sink's records (``None``: every record).
    filter_criteria: Any = None
    #: The batches this sink would like (rule 7); ``None``: the run's settings as they are.
    batch_hint: BatchHint | None = None

    @abc.abstractmethod
    async def start(self, context: SinkContext) -> None:
        """Connect, and create or check the target; raise :class:`SinkError` when it is unfit."""

    @abc.abstractmethod
    def open_shard(self, shard_id: str) -> ShardSink:
        """A writer for one shard lease."""

    async def write_snapshot(self, rows: Sequence[SnapshotRow]) -> None:
        """Write rows of the snapshot scan (only called when :attr:`snapshot` is set)."""
        raise SinkError(self.name, "this sink cannot copy a snapshot")

    async def check(self, context: SinkContext) -> list[str]:
        """Problems that would stop :meth:`start`, one line each (empty: all is well).

        Connects and checks the target without writing to it.
        """
        try:
            await self.start(context)
        except SinkError as exc:
            return [str(exc)]
        finally:
            await self.close()
        return []

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def iam_statements(self, region: str, account: str) -> list[dict[str, Any]]:
        """The IAM policy statements this sink needs on AWS (none for non-AWS targets)."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"
