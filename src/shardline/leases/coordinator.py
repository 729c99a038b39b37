"""The lease coordinator: renew what we hold, take what is due, release on request.

The decisions (which leases to take, when a lease is expired) live in pure modules;
this module only runs the loops and talks to the lease table. The renewal and take
loops run under a :class:`~shardline.supervisor.Supervisor`: a lease-table error ends a
round (logged, the next round retries); anything else kills the loop, which the
supervisor logs and restarts, and reports through ``on_fatal`` if it keeps dying.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shardline.errors import (
    CheckpointDependencyError,
    CheckpointThrottledError,
    ConditionalCheckFailedError,
    ShardlineError,
    ShutdownError,
    ThrottledError,
)
from shardline.leases.balance import LeaseState, plan_takes
from shardline.leases.expiry import ExpiryTracker
from shardline.leases.handoff import (
    HandoffStep,
    PendingHandoff,
    asked_to_hand_over,
    next_step,
    still_held,
)
from shardline.leases.model import Lease
from shardline.leases.scan_pace import (
    EXPIRING_MARGIN,
    ScanObservation,
    ScanPace,
    next_scan_interval,
    observe_scan,
)
from shardline.leases.table import LeaseTable
from shardline.metrics import Metrics
from shardline.supervisor import OnFatal, Supervisor
from shardline.waiting import wait_event

log = logging.getLogger("shardline.leases")

LeaseCallback = Callable[[Lease, str], Awaitable[None]]
LostCallback = Callable[[str], Awaitable[None]]
HandoffCallback = Callable[[str], Awaitable[None]]


@dataclass
class HeldLease:
    """A lease this worker holds, with the token that fences its checkpoints."""

    lease: Lease
    token: str
    last_renewed: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class CoordinatorSettings:
    worker_id: str
    failover_time: float
    renew_interval: float
    take_interval: float
    max_leases: int | None = None
    max_leases_to_steal: int = 1
    handoff_timeout: float = 0.0
    """Seconds a balance steal waits for the owner to hand over (0: take at once)."""
    quiet_interval: float | None = None
    """Scan interval while nothing is due (``scan_pace``); None: always ``take_interval``."""

    @property
    def pace(self) -> ScanPace:
        """``take_interval`` while something is due, ``quiet_interval`` otherwise."""
        return ScanPace(self.take_interval, max(self.take_interval, self.quiet_interval or 0))

    @property
    def expiring_after(self) -> float:
        """How long a live lease's counter may be seen still before it is suspect."""
        return self.renew_interval + self.pace.quiet + EXPIRING_MARGIN

    @property
    def handoff_poll(self) -> float:
        """How often a pending handoff is looked at."""
        return min(self.take_interval, 0.25)


RENEWALS_IN_FLIGHT = 64  #: lease renewals a worker has in flight at once


def _loops_stopped(name: str, error: BaseException) -> None:
    """Without an ``on_fatal``: the supervisor's log line is all there is to do."""


class LeaseCoordinator:
    """Owns this worker's view of the lease table and its held leases."""

    def __init__(
        self,
        table: LeaseTable,
        settings: CoordinatorSettings,
        *,
        on_acquired: LeaseCallback,
        on_lost: LostCallback,
        on_handoff: HandoffCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        on_fatal: OnFatal | None = None,
    ) -> None:
        self.table = table
        self.settings = settings
        self.worker_id = settings.worker_id
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._on_handoff = on_handoff
        self._clock = clock
        self._rng = rng or random.Random()
        self._expiry = ExpiryTracker(settings.failover_time)
        self._held: dict[str, HeldLease] = {}
        self._loops = Supervisor(on_fatal or _loops_stopped)
        self._renewals = asyncio.Semaphore(RENEWALS_IN_FLIGHT)
        self._asked: dict[str, asyncio.Task[None]] = {}  # handoffs we asked for
        self._handing_over: dict[str, str] = {}  # held lease -> the next owner that asked
        self._take_now = asyncio.Event()
        self._taking = True
        self.last_scan: dict[str, Lease] = {}
        self.metrics = metrics or Metrics()
        self.last_scan_at: float | None = None
        self.last_observation: ScanObservation | None = None
        self._scan_owners: dict[str, str | None] | None = None

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Reclaim our own leases (a restart keeps them), then start renewing and taking."""
        await self._reclaim_own_leases()
        self._loops.start("lease renewal", self._renew_loop)
        self._loops.start("lease take", self._take_loop)

    def stop_taking(self) -> None:
        """Stop acquiring leases (first step of a graceful shutdown); renewals go on."""
        self._taking = False

    async def stop(self, *, release: bool) -> None:
        """Stop the loops; with ``release``, hand every held lease back at once."""
        self._taking = False
        asked = dict(self._asked)
        for task in asked.values():
            task.cancel()
        await asyncio.gather(self._loops.stop(), *asked.values(), return_exceptions=True)
        if release:
            await asyncio.gather(
                *(self.release(key) for key in list(self._held)),
                *(self._withdraw(key) for key in asked),
            )

    def request_take(self) -> None:
        """Run a take round now (a shard ended and its children want an owner)."""
        self._take_now.set()

    # --- queries ---------------------------------------------------------------------

    def held_keys(self) -> list[str]:
        return list(self._held)

    def health(self) -> tuple[bool, str]:
        """Healthy while every held lease was renewed within the failover time and the
        table was scanned recently; the reason when not."""
        now = self._clock()
        stale = [key for key, held in self._held.items() if self._locally_expired(held)]
        if stale:
            return False, f"{len(stale)} held lease(s) not renewed within the failover time"
        limit = max(3 * self.settings.pace.quiet, self.settings.failover_time)
        if self.last_scan_at is None or now - self.last_scan_at > limit:
            return False, "the lease table has not been scanned recently"
        return True, "ok"

    def available_leases(self) -> int:
        """Unfinished leases nobody else holds (from the last scan), not held by us."""
        return sum(
            1
            for lease in self.last_scan.values()
            if not lease.is_finished
            and lease.key not in self._held
            and self._expiry.is_expired(lease.key, self._clock())
        )

    def is_held(self, key: str, token: str) -> bool:
        held = self._held.get(key)
        return held is not None and held.token == token and not self._locally_expired(held)

    def _locally_expired(self, held: HeldLease) -> bool:
        return self._clock() - held.last_renewed > self.settings.failover_time

    # --- checkpoint and release --------------------------------------------------------

    async def checkpoint(
        self,
        key: str,
        token: str,
        value: str,
        sub: int,
        child_shard_ids: frozenset[str] | None = None,
    ) -> Lease:
        """Write a checkpoint fenced by the lease counter; KCL's error names on failure."""
        held = self._held.get(key)
        if held is None or held.token != token or self._locally_expired(held):
            raise ShutdownError(f"lease {key} is no longer held by {self.worker_id}")
        async with held.lock:
            try:
                lease = await self.table.checkpoint(held.lease, value, sub, child_shard_ids)
            except ConditionalCheckFailedError as exc:
                self.metrics.checkpoint_failures.labels("ShutdownException").inc()
                await self._lose(key, "its counter moved while checkpointing")
                raise ShutdownError(f"lease {key} was taken by another worker") from exc
            except ThrottledError as exc:
                self.metrics.checkpoint_failures.labels("ThrottlingException").inc()
                raise CheckpointThrottledError(str(exc)) from exc
            except ShardlineError as exc:
                self.metrics.checkpoint_failures.labels("DependencyException").inc()
                raise CheckpointDependencyError(str(exc)) from exc
            self.metrics.checkpoints.inc()
            held.lease = lease
            held.last_renewed = self._clock()
            return lease

    async def release(self, key: str, token: str | None = None) -> None:
        """Give a held lease back (owner removed, counter + 1) so another worker takes it now.

        With ``token``, only the holding that token names is released (not a newer one).
        """
        held = self._held.get(key)
        if held is None or (token is not None and held.token != token):
            return
        del self._held[key]
        self.metrics.leases_held.set(len(self._held))
        next_owner = self._handing_over.pop(key, None)
        async with held.lock:
            try:
                await self._give_back(held.lease, next_owner)
            except ShardlineError as exc:
                log.warning("could not release lease %s (it will expire): %s", key, exc)

    async def _give_back(self, lease: Lease, next_owner: str | None) -> None:
        """Evict, or complete the handoff when one is pending (asked, or found so)."""
        if next_owner is not None and await self.table.hand_over(lease):
            log.info("handed over lease %s to %s", lease.key, next_owner)
        elif await self.table.evict(lease):
            self.metrics.lease_releases.inc()
            log.info("released lease %s", lease.key)
        elif next_owner is None and await self.table.hand_over(lease):
            log.info("handed over lease %s to its next owner", lease.key)
        elif next_owner is not None:
            log.warning("could not hand over lease %s to %s (it moved)", lease.key, next_owner)

    async def still_holds(self, key: str, token: str) -> bool:
        """One consistent read: is the lease still ours as we hold it? Dropped (quietly,
        without telling the consumer) when it moved."""
        held = self._held.get(key)
        if held is None or held.token != token:
            return False
        async with held.lock:
            seen = await self.table.get_lease(key)
            if still_held(seen, self.worker_id, held.lease.counter):
                return True
        if self._held.get(key) is held:
            del self._held[key]
            self._handing_over.pop(key, None)
            self.metrics.leases_held.set(len(self._held))
            log.info("lease %s moved while its shard waited for its parents; dropped", key)
        return False

    # --- renewal -----------------------------------------------------------------------

    async def renew_all(self) -> None:
        """Renew every held lease, :data:`RENEWALS_IN_FLIGHT` at a time (1,000 calls at
        once behind a slow endpoint would pass their deadline, failover/4)."""
        await asyncio.gather(*(self._renew_in_turn(key) for key in list(self._held)))

    async def _renew_in_turn(self, key: str) -> None:
        async with self._renewals:
            await self._renew(key)

    async def _renew(self, key: str) -> None:
        held = self._held.get(key)
        if held is None:
            return
        if self._locally_expired(held):
            await self._lose(key, "it was not renewed within the failover time")
            return
        async with held.lock:
            try:
                renewed = await self.table.renew(held.lease)
            except ShardlineError as exc:
                self.metrics.lease_renewal_failures.inc()
                log.warning("renewing lease %s failed, will retry: %s", key, exc)
                return
            if renewed is None:
                await self._lose(key, "another worker took it")
                return
            held.lease = renewed
            held.last_renewed = self._clock()
        await self._notice_handoff(renewed)

    async def _lose(self, key: str, why: str) -> None:
        self._handing_over.pop(key, None)
        if self._held.pop(key, None) is not None:
            self.metrics.lease_losses.inc()
            self.metrics.leases_held.set(len(self._held))
            log.warning("lost lease %s: %s", key, why)
            await self._on_lost(key)

    # --- taking ------------------------------------------------------------------------

    async def _reclaim_own_leases(self) -> None:
        leases = await self.table.list_leases()
        self._observe(leases)
        for lease in leases:
            if lease.owner == self.worker_id and lease.handoff_pending:
                self._await_handoff(lease)  # asked for before a restart
            elif lease.owner == self.worker_id and not lease.is_finished:
                renewed = await self.table.renew(lease)
                if renewed is not None:
                    await self._hold(renewed, "reclaimed", "reclaimed")

    async def _take_loop(self) -> None:
        while True:
            try:
                if self._taking:
                    await self.take_round()
            except ShardlineError as exc:
                self.last_observation = None  # retry at the fast pace
                log.warning("lease take round failed, will retry: %s", exc)
            except Exception:
                self.last_observation = None  # after the restart, at the fast pace
                raise
            await wait_event(self._take_now, self.next_scan_in())
            self._take_now.clear()

    def next_scan_in(self) -> float:
        """Seconds until the next scan: fast until a scan shows nothing due."""
        if self.last_observation is None:
            return self.settings.pace.fast
        return next_scan_interval(self.last_observation, self.settings.pace)

    async def take_round(self) -> None:
        """Scan the table, then take expired leases and steal toward a fair share."""
        leases = await self.table.list_leases()
        self._observe(leases)
        self.last_scan_at = self._clock()
        by_key = {lease.key: lease for lease in leases}
        states = [self._state_of(lease) for lease in leases]
        plan = plan_takes(
            states,
            self.worker_id,
            max_leases=self.settings.max_leases or 1_000_000,
            max_steal=self.settings.max_leases_to_steal,
            rng=self._rng,
        )
        self._observe_pace(leases, states, would_take=bool(plan.take or plan.steal))
        for lease in leases:
            await self._notice_handoff(lease)
        for key in plan.take:
            await self._try_take(by_key[key], "took expired", "expired")
        for key in plan.steal:
            if self.settings.handoff_timeout > 0:
                await self._ask_for(by_key[key])
            else:
                await self._try_take(by_key[key], f"stole from {by_key[key].owner}", "stolen")

    def _observe_pace(
        self, leases: list[Lease], states: list[LeaseState], *, would_take: bool
    ) -> None:
        """Note what this scan says about the pace of the next one."""
        was_quiet = self.last_observation is not None and self.last_observation.quiet
        self.last_observation = observe_scan(
            states,
            self.worker_id,
            still_for=self._expiry.still_for(self._clock()),
            expiring_after=self.settings.expiring_after,
            handoff_pending=bool(self._asked or self._handing_over)
            or any(lease.handoff_pending for lease in leases),
            would_take=would_take,
            previous_owners=self._scan_owners,
        )
        self._scan_owners = {lease.key: lease.owner for lease in leases}
        if self.last_observation.quiet != was_quiet:
            reasons = ", ".join(self.last_observation.reasons) or "nothing due"
            log.debug("lease table scans every %.2fs (%s)", self.next_scan_in(), reasons)

    def _observe(self, leases: list[Lease]) -> None:
        self._expiry.observe(leases, self._clock())
        self.last_scan = {lease.key: lease for lease in leases}

    def _state_of(self, lease: Lease) -> LeaseState:
        mine = lease.key in self._held
        expired = not mine and self._expiry.is_expired(lease.key, self._clock())
        owner = self.worker_id if mine else lease.owner
        return LeaseState(key=lease.key, owner=owner, expired=expired, finished=lease.is_finished)

    async def _try_take(self, lease: Lease, how: str, kind: str, detail: str = "") -> bool:
        if not self._taking or lease.key in self._held:
            return False
        taken = await self.table.take(lease, self.worker_id)
        if taken is not None:
            await self._hold(taken, how, kind, detail)
        return taken is not None

    async def _hold(self, lease: Lease, how: str, kind: str, detail: str = "") -> None:
        log.info("%s lease %s%s (counter %d)", how, lease.key, detail, lease.counter)
        token = uuid.uuid4().hex
        self._held[lease.key] = HeldLease(lease=lease, token=token, last_renewed=self._clock())
        self.metrics.lease_takes.labels(kind).inc()
        self.metrics.leases_held.set(len(self._held))
        await self._on_acquired(lease, token)

    # --- graceful handoff: the current owner's side --------------------------------------

    async def _notice_handoff(self, lease: Lease) -> None:
        """Tell the consumer once when a lease we hold is asked of us."""
        key = lease.key
        if key not in self._held or key in self._handing_over:
            return
        if asked_to_hand_over(lease, self.worker_id) and lease.owner is not None:
            self._handing_over[key] = lease.owner
            log.info("asked by %s to hand over lease %s", lease.owner, key)
            if self._on_handoff is not None:
                await self._on_handoff(key)

    # --- graceful handoff: the next owner's side -----------------------------------------

    async def _ask_for(self, lease: Lease) -> None:
        if not self._taking or lease.key in self._held or lease.key in self._asked:
            return
        asked = await self.table.request_handoff(lease, self.worker_id)
        if asked is None:
            return
        owner, key = lease.owner, lease.key
        log.info("asked %s to hand over lease %s (counter %d)", owner, key, asked.counter)
        self._await_handoff(asked)

    def _await_handoff(self, lease: Lease) -> None:
        pending = PendingHandoff(lease.key, lease.checkpoint_owner or "", self._clock())
        task = asyncio.create_task(self._follow(pending), name=f"handoff {lease.key}")
        self._asked[lease.key] = task

    async def _follow(self, pending: PendingHandoff) -> None:
        """Look at the lease until it is handed over, timed out, or gone elsewhere."""
        try:
            while self._taking:
                await asyncio.sleep(self.settings.handoff_poll)
                if await self._handoff_step(pending):
                    return
            await self._withdraw(pending.key)
        finally:
            if self._asked.get(pending.key) is asyncio.current_task():
                del self._asked[pending.key]

    async def _handoff_step(self, pending: PendingHandoff) -> bool:
        """One look; True when the handoff is over (taken or abandoned)."""
        if pending.key in self._held:  # taken meanwhile by a take round (it had expired)
            return True
        try:
            seen = await self.table.get_lease(pending.key)
            now = self._clock()
            step = next_step(pending, seen, self.worker_id, now, self.settings.handoff_timeout)
            if step is HandoffStep.WAIT:
                return False
            if step is HandoffStep.ABANDON or seen is None:
                log.info("gave up the handoff of lease %s: it moved", pending.key)
                return True
            waited = now - pending.requested_at
            if step is HandoffStep.ACQUIRE:
                detail = f", handed over by {pending.previous} after {waited:.2f}s"
                return await self._try_take(seen, "took", "handoff", detail)
            detail = f", handoff from {pending.previous} timed out after {waited:.2f}s"
            return await self._try_take(seen, "took", "handoff-timeout", detail)
        except ShardlineError as exc:
            log.warning("handoff of lease %s: %s; will look again", pending.key, exc)
            return False

    async def _withdraw(self, key: str) -> None:
        """Stopping while a handoff is pending: give the lease back to its owner (or,
        when it was already handed over to us, release it for anyone)."""
        try:
            seen = await self.table.get_lease(key)
            if seen is None or seen.owner != self.worker_id or key in self._held:
                return
            if seen.handoff_pending:
                if await self.table.cancel_handoff(seen, self.worker_id):
                    log.info("withdrew the handoff of lease %s", key)
            elif await self.table.evict(seen):
                log.info("released lease %s (handed over while stopping)", key)
        except ShardlineError as exc:
            log.warning("could not withdraw the handoff of lease %s: %s", key, exc)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.renew_interval)
            try:
                await self.renew_all()
            except ShardlineError as exc:
                log.warning("lease renewal round failed: %s", exc)
