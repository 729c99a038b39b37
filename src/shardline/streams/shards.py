"""The shard graph: lineage, which shards get leases, which may start, which leases go.

Everything here is pure. The rules follow the DynamoDB Streams Kinesis adapters
(``reference/kcl-compat.md`` 2.8-2.10) with a few deliberate, documented differences:

* A *closed* leaf (a closed shard whose children are not listed yet) gets a lease when
  it would get one at ``TRIM_HORIZON`` anyway; KCL waits for the children to appear.
* A shard whose ``ParentShardId`` is no longer listed (trimmed) but still has a lease
  counts as a descendant of that lease, so it starts at ``TRIM_HORIZON``, never at
  ``LATEST``.
* Garbage collection of leases for shards the stream no longer lists is conservative:
  only finished leases go, and only once nothing depends on them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from shardline.leases.model import LATEST, TRIM_HORIZON, Lease
from shardline.streams.model import Shard

__all__ = [
    "CLOSED_PARENT_END",
    "Lineage",
    "NewLease",
    "build_lineage",
    "leases_to_create",
    "leases_to_delete",
    "may_start",
]

#: Ending sequence number given to a shard listed as open although a child of it is
#: listed too (the adapters use Java's ``Long.MAX_VALUE`` for the same repair).
CLOSED_PARENT_END = str(2**63 - 1)

_INITIAL_POSITIONS = (TRIM_HORIZON, LATEST)


@dataclass(frozen=True)
class Lineage:
    """The parent/child graph of the listed shards.

    ``parents[s]`` is the parent of ``s`` when that parent is listed, else ``None``
    (a parent the stream no longer lists was trimmed: ``s`` is then a root).
    ``children[s]`` lists the listed children of ``s`` in (starting sequence number,
    shard id) order; every listed shard has an entry. ``shards`` maps each shard id to
    its :class:`Shard`, with open parents that have listed children repaired to closed.
    """

    parents: dict[str, str | None]
    children: dict[str, tuple[str, ...]]
    shards: dict[str, Shard]

    def is_leaf(self, shard_id: str) -> bool:
        """A listed shard with no listed child."""
        return not self.children[shard_id]

    def ancestors(self, shard_id: str) -> list[str]:
        """The listed ancestors of ``shard_id``, nearest first."""
        chain: list[str] = []
        parent = self.parents.get(shard_id)
        while parent is not None:
            chain.append(parent)
            parent = self.parents[parent]
        return chain


@dataclass(frozen=True)
class NewLease:
    """A lease :func:`leases_to_create` asks for."""

    shard_id: str
    parent_shard_ids: frozenset[str]
    checkpoint: str


def build_lineage(shards: Iterable[Shard]) -> Lineage:
    """Build the shard graph from a DescribeStream listing, in any order.

    Repeated shard ids (a listing read across pages while shards closed) keep the
    closed copy. A parent id that is not listed makes the shard a root. A parent
    listed as open that has a listed child is treated as closed. Parent links that
    would form a cycle (possible only in corrupt input) are cut.
    """
    by_id = _dedupe(shards)
    parents = _break_cycles(
        {
            sid: shard.parent_shard_id if shard.parent_shard_id in by_id else None
            for sid, shard in by_id.items()
        }
    )
    children_lists: dict[str, list[str]] = {sid: [] for sid in by_id}
    for sid, parent in parents.items():
        if parent is not None:
            children_lists[parent].append(sid)
    children = {
        sid: tuple(sorted(kids, key=lambda k: _order_key(by_id[k])))
        for sid, kids in children_lists.items()
    }
    repaired = {sid: _close_if_parent(shard, bool(children[sid])) for sid, shard in by_id.items()}
    return Lineage(parents=parents, children=children, shards=repaired)


def _dedupe(shards: Iterable[Shard]) -> dict[str, Shard]:
    by_id: dict[str, Shard] = {}
    for shard in shards:
        seen = by_id.get(shard.shard_id)
        if seen is None or (seen.is_open and not shard.is_open):
            by_id[shard.shard_id] = shard
    return by_id


def _break_cycles(parents: dict[str, str | None]) -> dict[str, str | None]:
    """Cut the parent link that closes a cycle, visiting shards in id order."""
    result = dict(parents)
    done: set[str] = set()
    for start in sorted(result):
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in done:
            if node in on_path:
                result[path[-1]] = None
                break
            path.append(node)
            on_path.add(node)
            node = result[node]
        done.update(path)
    return result


def _close_if_parent(shard: Shard, has_children: bool) -> Shard:
    if has_children and shard.is_open:
        return replace(shard, ending_sequence_number=CLOSED_PARENT_END)
    return shard


def _order_key(shard: Shard) -> tuple[int, int, str]:
    """(starting sequence number, shard id); shards without a number sort last."""
    start = shard.starting_sequence_number
    if start is not None and start.isascii() and start.isdigit():
        return (0, int(start), shard.shard_id)
    return (1, 0, shard.shard_id)


# --- lease creation ------------------------------------------------------------------


def leases_to_create(
    shards: Iterable[Shard], existing: Mapping[str, Lease], initial_position: str
) -> list[NewLease]:
    """The leases a shard sync should create, parents before children.

    Every leaf without a lease is a starting point (an open leaf always; a closed leaf
    only when it would start at ``TRIM_HORIZON``). Walking up from it: if some ancestor
    has a lease, or ``initial_position`` is ``TRIM_HORIZON`` (the oldest listed
    ancestor then counts as a descendant), the leaf and every ancestor below the
    nearest leased one get ``TRIM_HORIZON`` leases. Otherwise (``LATEST`` with no
    leased ancestor) only an open leaf gets a lease, at ``LATEST``.

    Within the parent-before-child constraint, leases come in (starting sequence
    number, shard id) order. Raises :class:`ValueError` for an initial position other
    than ``TRIM_HORIZON`` or ``LATEST`` (DynamoDB Streams has no ``AT_TIMESTAMP``).
    """
    if initial_position not in _INITIAL_POSITIONS:
        raise ValueError(
            f"initial position must be {TRIM_HORIZON} or {LATEST}, not {initial_position!r}"
        )
    lineage = build_lineage(shards)
    planned: dict[str, str] = {}
    memo: dict[str, bool] = {}
    for sid in sorted(lineage.shards):
        if lineage.is_leaf(sid) and sid not in existing:
            _plan_from_leaf(sid, lineage, existing, initial_position, memo, planned)
    return [
        NewLease(
            shard_id=sid,
            parent_shard_ids=_parent_ids(lineage.shards[sid]),
            checkpoint=planned[sid],
        )
        for sid in _parents_first(planned, lineage)
    ]


def _plan_from_leaf(
    leaf: str,
    lineage: Lineage,
    existing: Mapping[str, Lease],
    initial_position: str,
    memo: dict[str, bool],
    planned: dict[str, str],
) -> None:
    chain, stop = _unleased_chain(leaf, lineage, existing, memo)
    if stop is not None:
        descendant = memo.get(stop, True)  # not memoized: ``stop`` has a lease
    else:
        descendant = _root_counts_as_descendant(chain[-1], lineage, existing, initial_position)
    for sid in chain:
        memo[sid] = descendant
    if descendant:
        for sid in chain:
            planned[sid] = TRIM_HORIZON
    elif lineage.shards[leaf].is_open:
        planned[leaf] = initial_position


def _unleased_chain(
    leaf: str, lineage: Lineage, existing: Mapping[str, Lease], memo: Mapping[str, bool]
) -> tuple[list[str], str | None]:
    """``leaf`` and its listed ancestors up to the nearest leased or already walked one.

    Returns the chain (nearest first) and where the walk stopped: a leased or walked
    ancestor, or ``None`` when the chain reached a root.
    """
    chain = [leaf]
    parent = lineage.parents[leaf]
    while parent is not None and parent not in existing and parent not in memo:
        chain.append(parent)
        parent = lineage.parents[parent]
    return chain, parent


def _root_counts_as_descendant(
    root: str, lineage: Lineage, existing: Mapping[str, Lease], initial_position: str
) -> bool:
    """A root descends from a lease when its trimmed parent still has one; with
    ``TRIM_HORIZON`` every root counts as a descendant (its data is wanted)."""
    raw_parent = lineage.shards[root].parent_shard_id
    if raw_parent is not None and raw_parent in existing:
        return True
    return initial_position == TRIM_HORIZON


def _parent_ids(shard: Shard) -> frozenset[str]:
    parent = shard.parent_shard_id
    return frozenset() if parent is None else frozenset({parent})


def _parents_first(planned: Mapping[str, str], lineage: Lineage) -> list[str]:
    """Topological order of ``planned`` (parents first), ties by (start seq, id)."""
    ready = [
        (_order_key(lineage.shards[sid]), sid)
        for sid in planned
        if lineage.parents[sid] not in planned
    ]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        _, sid = heapq.heappop(ready)
        ordered.append(sid)
        for child in lineage.children[sid]:
            if child in planned:
                heapq.heappush(ready, (_order_key(lineage.shards[child]), child))
    return ordered


# --- starting ------------------------------------------------------------------------


def may_start(lease: Lease, leases: Mapping[str, Lease]) -> bool:
    """True when every parent lease is at ``SHARD_END`` or does not exist (2.9)."""
    for parent in lease.parent_shard_ids:
        parent_lease = leases.get(parent)
        if parent_lease is not None and not parent_lease.is_finished:
            return False
    return True


# --- cleanup -------------------------------------------------------------------------


def leases_to_delete(leases: Mapping[str, Lease], lineage: Lineage | None) -> list[str]:
    """Keys of leases that can be deleted now, sorted.

    Only finished (``SHARD_END``) leases are ever deleted, and only when no parent
    lease of theirs remains (so lineage is deleted top-down, one generation per call:
    a failed delete can never strand a parent whose child lease is gone) and every
    lease that names them as parent has started. Two kinds qualify:

    * **completed**: the lease's children, from ``Lease.child_shard_ids`` or else from
      ``lineage``, are known and all have started leases. Never a lease with no known
      child: its children may just not be listed yet.
    * **garbage** (needs a non-empty ``lineage``): the shard and all its parents are no
      longer listed, i.e. trimmed (KCL's rule). Listed shards naming it as parent, and
      its ``child_shard_ids`` that are still listed, must have started leases. With no
      such child it goes: a trimmed shard's children stay listed at least as long as
      it was, so none can appear later.

    Unfinished leases of trimmed shards are left alone: the consumer that takes one
    finds the shard gone and checkpoints it at ``SHARD_END``; then it qualifies.
    """
    index = _ChildIndex.build(leases, lineage)
    return sorted(
        key
        for key, lease in leases.items()
        if lease.is_finished
        and not _has_parent_lease(lease, leases, lineage)
        and _all_started(index.leased.get(key, ()), leases)
        and (_is_completed(lease, leases, lineage) or _is_garbage(lease, leases, index))
    )


@dataclass(frozen=True)
class _ChildIndex:
    """Who names whom as parent: in the listing (``listed``) and in leases (``leased``)."""

    lineage: Lineage | None
    listed: dict[str, set[str]]
    leased: dict[str, set[str]]

    @classmethod
    def build(cls, leases: Mapping[str, Lease], lineage: Lineage | None) -> _ChildIndex:
        leased: dict[str, set[str]] = {}
        for key, lease in leases.items():
            for parent in lease.parent_shard_ids:
                leased.setdefault(parent, set()).add(key)
        listed: dict[str, set[str]] = {}
        for shard in lineage.shards.values() if lineage is not None else ():
            if shard.parent_shard_id is not None:
                listed.setdefault(shard.parent_shard_id, set()).add(shard.shard_id)
        return cls(lineage=lineage, listed=listed, leased=leased)


def _has_parent_lease(lease: Lease, leases: Mapping[str, Lease], lineage: Lineage | None) -> bool:
    parents = set(lease.parent_shard_ids)
    if lineage is not None and (listed_parent := lineage.parents.get(lease.key)) is not None:
        parents.add(listed_parent)
    return any(parent in leases for parent in parents)


def _all_started(children: Iterable[str], leases: Mapping[str, Lease]) -> bool:
    return all(child in leases and leases[child].has_started for child in children)


def _is_completed(lease: Lease, leases: Mapping[str, Lease], lineage: Lineage | None) -> bool:
    children: Iterable[str] = lease.child_shard_ids
    if not lease.child_shard_ids and lineage is not None:
        children = lineage.children.get(lease.key, ())
    children = tuple(children)
    return bool(children) and _all_started(children, leases)


def _is_garbage(lease: Lease, leases: Mapping[str, Lease], index: _ChildIndex) -> bool:
    listed = index.lineage.shards if index.lineage is not None else {}
    if not listed or lease.key in listed:
        return False
    if any(parent in listed for parent in lease.parent_shard_ids):
        return False
    known = lease.child_shard_ids | index.listed.get(lease.key, set())
    return _all_started((child for child in known if child in listed), leases)
