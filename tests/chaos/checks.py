"""Pure checks of a chaos run: what the processors recorded against what was written.

Input: the recorder's lines (see ``recorder.py``), the versions written per key, the
shard lineage, and the driver's kill/terminate moments. Output: figures and the list of
broken rules.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Row:
    """One processed record."""

    index: int  # line number in the shared file: the global order of events
    time: float
    pid: str
    shard: str
    seq: int
    key: str
    version: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    index: int
    start: float
    pid: str
    shard: str
    outcome: str


@dataclass(frozen=True, slots=True)
class Stop:
    """A signal the driver sent: ``kind`` is SIGKILL or SIGTERM."""

    time: float
    pid: str
    kind: str


@dataclass
class Recording:
    rows: list[Row] = field(default_factory=list)
    inits: list[tuple[int, float, str, str]] = field(
        default_factory=list
    )  # index, time, pid, shard
    checkpoints: list[Checkpoint] = field(default_factory=list)
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # index, pid, shard
    lost_leases: int = 0


def parse(lines: list[str]) -> Recording:
    """Parse the recorder's file (torn last lines of killed workers are skipped)."""
    out = Recording()
    for index, line in enumerate(lines):
        parts = line.split()
        kind = parts[0] if parts else ""
        if kind == "R" and len(parts) == 8:
            out.rows.append(
                Row(
                    index,
                    float(parts[1]),
                    parts[3],
                    parts[4],
                    int(parts[5]),
                    parts[6],
                    int(parts[7]),
                )
            )
        elif kind == "I" and len(parts) == 6:
            out.inits.append((index, float(parts[1]), parts[3], parts[4]))
        elif kind == "C" and len(parts) == 8:
            checkpoint = Checkpoint(index, float(parts[1]), parts[4], parts[5], parts[7])
            out.checkpoints.append(checkpoint)
            if checkpoint.outcome != "ok":
                out.failures.append((index, checkpoint.pid, checkpoint.shard))
        elif kind == "L" and len(parts) == 5:
            out.lost_leases += 1
            out.failures.append((index, parts[3], parts[4]))
    return out


def lost_changes(rows: list[Row], written: dict[str, int]) -> int:
    """Written (key, version) pairs that no processor ever processed."""
    seen = {(row.key, row.version) for row in rows}
    return sum(1 for key, n in written.items() for v in range(1, n + 1) if (key, v) not in seen)


def order_violations(rows: list[Row]) -> int:
    """First deliveries of a key's versions out of order (replays of seen ones are fine)."""
    highest: dict[str, int] = {}
    seen: set[tuple[str, int]] = set()
    violations = 0
    for row in rows:
        if (row.key, row.version) in seen:
            continue  # a replayed suffix after a failure
        seen.add((row.key, row.version))
        if row.version < highest.get(row.key, 0):
            violations += 1
        highest[row.key] = max(highest.get(row.key, 0), row.version)
    return violations


def duplicates(rows: list[Row], failures: list[tuple[int, str, str]]) -> tuple[int, int]:
    """(duplicates, duplicates not explained by a failure).

    A redelivery is explained when another process delivered it the time before (a
    kill, a restart, a lease that moved), or when its process reported a failure on that
    shard (a lost lease, a refused or failed checkpoint) in between.
    """
    last: dict[tuple[str, int], Row] = {}
    failure_at: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, pid, shard in failures:
        failure_at[(pid, shard)].append(index)
    total = unexplained = 0
    for row in rows:
        earlier = last.get((row.shard, row.seq))
        last[(row.shard, row.seq)] = row
        if earlier is None:
            continue
        total += 1
        if earlier.pid != row.pid:
            continue
        between = failure_at.get((row.pid, row.shard), [])
        if not any(earlier.index < i < row.index for i in between):
            unexplained += 1
    return total, unexplained


def child_before_parent(rows: list[Row], parents: dict[str, str]) -> int:
    """Children whose first processed record came before their parent's last one."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for row in rows:
        first.setdefault(row.shard, row.index)
        last[row.shard] = row.index
    return sum(
        1
        for child, parent in parents.items()
        if child in first and parent in last and first[child] < last[parent]
    )


def stale_checkpoints_accepted(rec: Recording) -> int:
    """Checkpoints that succeeded although another process had taken the lease first.

    A checkpoint that started after another process initialized the same shard (and
    before this process initialized it again) was written with a stale lease counter;
    the lease table must refuse it.
    """
    inits_by_shard: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for _, time, pid, shard in rec.inits:
        inits_by_shard[shard].append((time, pid))
    bad = 0
    for checkpoint in rec.checkpoints:
        if checkpoint.outcome != "ok":
            continue
        before = [(t, p) for t, p in inits_by_shard[checkpoint.shard] if t < checkpoint.start]
        if before and max(before)[1] != checkpoint.pid:
            bad += 1
    return bad


def descendants(shard: str, children: dict[str, list[str]]) -> set[str]:
    found, todo = {shard}, [shard]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def takeover_gaps(rows: list[Row], stops: list[Stop], parents: dict[str, str]) -> dict[str, float]:
    """Longest time from a SIGKILL / SIGTERM until another process processed a record of
    a shard (or a descendant) that the stopped process had processed in the 10 s before."""
    children: dict[str, list[str]] = defaultdict(list)
    for child, parent in parents.items():
        children[parent].append(child)
    longest: dict[str, float] = {"SIGKILL": 0.0, "SIGTERM": 0.0}
    for stop in stops:
        held = {
            r.shard for r in rows if r.pid == stop.pid and stop.time - 10 <= r.time <= stop.time
        }
        for shard in held:
            lineage = descendants(shard, children)
            after = [
                r.time
                for r in rows
                if r.shard in lineage and r.pid != stop.pid and r.time > stop.time
            ]
            if after:
                longest[stop.kind] = max(longest[stop.kind], min(after) - stop.time)
    return longest


def figures(
    rec: Recording, written: dict[str, int], parents: dict[str, str], stops: list[Stop]
) -> dict[str, Any]:
    """Every figure of the run, by name."""
    dup_total, dup_unexplained = duplicates(rec.rows, rec.failures)
    gaps = takeover_gaps(rec.rows, stops, parents)
    outcomes = Counter(c.outcome for c in rec.checkpoints)
    return {
        "changes written": sum(written.values()),
        "keys": len(written),
        "records processed (with duplicates)": len(rec.rows),
        "lost changes": lost_changes(rec.rows, written),
        "per-key order violations": order_violations(rec.rows),
        "duplicates": dup_total,
        "duplicates without a failure": dup_unexplained,
        "child before parent": child_before_parent(rec.rows, parents),
        "shards": len(set(parents) | set(parents.values())),
        "checkpoints ok": outcomes["ok"],
        "checkpoints refused (lease moved)": outcomes["refused"],
        "checkpoints failed (other)": outcomes["error"],
        "stale checkpoints accepted": stale_checkpoints_accepted(rec),
        "leases lost (processor told)": rec.lost_leases,
        "SIGKILLs": sum(1 for s in stops if s.kind == "SIGKILL"),
        "SIGTERMs": sum(1 for s in stops if s.kind == "SIGTERM"),
        "longest gap after SIGKILL (s)": round(gaps["SIGKILL"], 2),
        "longest gap after SIGTERM (s)": round(gaps["SIGTERM"], 2),
    }


RULES = {
    "lost changes": "every written version of every key was processed",
    "per-key order violations": "a key's versions are first processed in increasing order",
    "duplicates without a failure": "duplicates only after a kill or a lease loss",
    "child before parent": "a child's first record after its parent's last",
    "stale checkpoints accepted": "after a lease moved, the old owner's checkpoints are refused",
}


def broken_rules(values: dict[str, Any]) -> list[str]:
    """The rules (see :data:`RULES`) whose figure is not 0."""
    return [f"{name} = {values[name]}: {rule}" for name, rule in RULES.items() if values[name]]
