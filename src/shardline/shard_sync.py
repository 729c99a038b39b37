"""ShardSyncer: keeps the lease table in step with the stream's shard graph.

A sync lists the leases and the shards of every followed stream (a re-enabled stream
is followed after the old one drains), creates a lease for each new shard where the
starting position says, and deletes finished leases whose children have started. The
first sync also refuses a lease table that tracks another stream. At a shard's end its
children get leases at once (:meth:`create_child_leases`), without waiting for a sync.
"""

from __future__ import annotations

import asyncio
import logging

from shardline.errors import LeaseTableError, ShardlineError
from shardline.leases.model import TRIM_HORIZON, Lease
from shardline.leases.ownership import tracks_another_stream
from shardline.leases.table import LeaseTable
from shardline.retry import Backoff, Retry, Stopped, pause_until
from shardline.streams.client import StreamsClient
from shardline.streams.followed import FollowedStreams
from shardline.streams.model import Shard
from shardline.streams.shards import build_lineage, leases_to_delete, may_start
from shardline.streams.tracking import plan_leases
from shardline.waiting import wait_event

log = logging.getLogger("shardline.worker")

__all__ = ["ShardSyncer"]


class ShardSyncer:
    """Creates and deletes leases as shards appear and finish (see the module docstring)."""

    def __init__(
        self,
        streams: StreamsClient,
        followed: FollowedStreams,
        table: LeaseTable,
        *,
        starting_position: str,
        cleanup_leases: bool,
        interval: float,
    ) -> None:
        self._streams = streams
        self._followed = followed
        self._table = table
        self._starting_position = starting_position
        self._cleanup_leases = cleanup_leases
        self._interval = interval
        self._requested = asyncio.Event()
        self._ownership_checked = False

    def request(self) -> None:
        """Sync now rather than at the next interval (a shard ended)."""
        self._requested.set()

    async def sync(self) -> None:
        """Create leases for new shards and delete finished ones whose children started."""
        leases = {lease.key: lease for lease in await self._table.list_leases()}
        if not self._ownership_checked:
            await self._followed.adopt_older_streams(leases)
        described = await self._followed.refresh()
        shards = tuple(shard for stream in described for shard in stream.shards)
        if not self._ownership_checked:
            self._check_ownership(list(leases.values()), shards)
        plan = plan_leases(described, leases, self._starting_position)
        for new in plan:
            lease = Lease(
                key=new.shard_id, checkpoint=new.checkpoint, parent_shard_ids=new.parent_shard_ids
            )
            if await self._table.create_if_not_exists(lease):
                log.info("created lease %s at %s", new.shard_id, new.checkpoint)
        self._followed.drop_drained(described, leases, {new.shard_id for new in plan})
        if not self._cleanup_leases:
            return
        for key in leases_to_delete(leases, build_lineage(shards)):
            log.info("deleting finished lease %s (its children have started)", key)
            await self._table.delete(key)

    async def first_sync(self, stop: asyncio.Event) -> None:
        """The first sync; a retriable failure (throttling, a slow answer) is retried.

        The endpoint has answered already (the stream was resolved), so a failure here is
        the service pushing back, not a mistake of the user's.
        """

        def warn(error: Exception, failures: int, delay: float) -> None:
            log.warning("first shard sync failed (%s); retrying in %.1fs", error, delay)

        retry = Retry(
            Backoff(0.5, 5.0),
            pause=pause_until(stop),
            retriable=lambda e: isinstance(e, ShardlineError) and e.retriable,
            on_retry=warn,
        )
        try:
            await retry.run(self.sync)
        except Stopped:
            return

    async def run(self) -> None:
        """Sync every interval (or when asked) until cancelled. A service error is logged
        and the next sync retries; anything else ends the loop (its supervisor restarts it)."""
        while True:
            await wait_event(self._requested, self._interval)
            self._requested.clear()
            try:
                await self.sync()
            except ShardlineError as exc:
                log.warning("shard sync failed, will retry: %s", exc)

    async def create_child_leases(self, shard_id: str) -> frozenset[str]:
        """At a shard's end: list its children and create their leases at once (a sync
        is asked for when none is listed yet)."""
        stream = self._followed.stream_of(shard_id)
        children = await self._streams.child_shards(stream, shard_id)
        for child in children:
            lease = Lease(
                key=child.shard_id, checkpoint=TRIM_HORIZON, parent_shard_ids=frozenset({shard_id})
            )
            if await self._table.create_if_not_exists(lease):
                log.info("created lease %s for a child of %s", child.shard_id, shard_id)
        if not children:
            self.request()
        return frozenset(child.shard_id for child in children)

    async def parents_done(self, lease: Lease) -> bool:
        """Whether the lease's parents finished (or are gone), so its shard may start."""
        parents: dict[str, Lease] = {}
        for parent_id in lease.parent_shard_ids:
            parent = await self._table.get_lease(parent_id)
            if parent is not None:
                parents[parent_id] = parent
        return may_start(lease, parents)

    def _check_ownership(self, leases: list[Lease], shards: tuple[Shard, ...]) -> None:
        if tracks_another_stream(leases, shards):
            raise LeaseTableError(
                f"lease table {self._table.name} holds leases of another stream "
                f"(none of its {len(leases)} leases is a shard of {self._followed.latest}); "
                "use a different --application or --lease-table for this stream"
            )
        self._ownership_checked = True
