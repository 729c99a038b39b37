"""Pure checks of a chaos run: what the processors recorded against what was written.

Input: the recorder's lines (see ``recorder.py``), the versions written per key, the
shard lineage, the driver's kill/terminate moments and the workers' lease log lines.
Output: figures and the list of broken rules.

Who held a shard's lease when is judged by the lease counter each event was made under
(the counter at which that process acquired the lease): a higher counter is a later
holder, whatever order the processes' own events reached the file in.
"""

from __future__ import annotations

import re
import statistics
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
    lease: int = -1  # the lease counter of the holding it was delivered under


@dataclass(frozen=True, slots=True)
class Init:
    """A consumer initialized: ``lease`` is the counter its process acquired the lease at."""

    index: int
    time: float
    pid: str
    shard: str
    lease: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    index: int
    start: float
    pid: str
    shard: str
    outcome: str
    lease: int = -1


@dataclass(frozen=True, slots=True)
class Stop:
    """A signal the driver sent: ``kind`` is SIGKILL or SIGTERM."""

    time: float
    pid: str
    kind: str


@dataclass
class Recording:
    rows: list[Row] = field(default_factory=list)
    inits: list[Init] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # index, pid, shard
    lost_leases: int = 0


def parse(lines: list[str]) -> Recording:
    """Parse the recorder's file (torn last lines of killed workers are skipped)."""
    out = Recording()
    for index, line in enumerate(lines):
        parts = line.split()
        kind = parts[0] if parts else ""
        if kind == "R" and len(parts) == 9:
            time, pid, shard, seq, key, version = parts[1], *parts[3:8]
            out.rows.append(
                Row(index, float(time), pid, shard, int(seq), key, int(version), _int(parts[8]))
            )
        elif kind == "I" and len(parts) == 7:
            out.inits.append(Init(index, float(parts[1]), parts[3], parts[4], _int(parts[6])))
        elif kind == "C" and len(parts) == 9:
            checkpoint = Checkpoint(
                index, float(parts[1]), parts[4], parts[5], parts[7], _int(parts[8])
            )
            out.checkpoints.append(checkpoint)
            if checkpoint.outcome != "ok":
                out.failures.append((index, checkpoint.pid, checkpoint.shard))
        elif kind == "L" and len(parts) == 6:
            out.lost_leases += 1
            out.failures.append((index, parts[3], parts[4]))
    return out


def _int(text: str) -> int:
    return int(text) if text.lstrip("-").isdigit() else -1


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
    """Checkpoints written by a process that no longer held the lease (must be 0).

    A checkpoint made under lease counter ``c`` that succeeded after another process had
    acquired the same lease at a higher counter (its initialization came before the
    checkpoint started) was written with a stale fence; the lease table must refuse it.
    """
    inits_by_shard: dict[str, list[Init]] = defaultdict(list)
    for init in rec.inits:
        inits_by_shard[init.shard].append(init)
    return sum(
        1
        for checkpoint in rec.checkpoints
        if checkpoint.outcome == "ok"
        and any(
            init.pid != checkpoint.pid
            and init.lease > checkpoint.lease
            and init.time < checkpoint.start
            for init in inits_by_shard[checkpoint.shard]
        )
    )


def inits_of_lost_leases(rec: Recording) -> int:
    """Initializations of a lease the process had already lost (allowed, counted): another
    process had initialized the same shard under a higher lease counter before."""
    newest: dict[str, int] = {}
    late = 0
    for init in rec.inits:  # file order
        if init.lease < newest.get(init.shard, -1):
            late += 1
        newest[init.shard] = max(newest.get(init.shard, -1), init.lease)
    return late


def overlapping_deliveries(rows: list[Row], steals: set[tuple[str, int]]) -> int:
    """Balance steals after which the previous holder still delivered records of the
    shard once the new holder had begun to (must be 0 with graceful handoff).

    ``steals`` are (shard, lease counter) acquisitions made by a balance steal; the
    previous holder is the holding of that shard with the next lower counter.
    """
    first: dict[tuple[str, int], int] = {}
    last: dict[tuple[str, int], int] = {}
    for row in rows:
        first.setdefault((row.shard, row.lease), row.index)
        last[(row.shard, row.lease)] = row.index
    overlaps = 0
    for shard, lease in steals:
        if (shard, lease) not in first:
            continue
        earlier = [held for (s, held) in last if s == shard and held < lease]
        if earlier and last[(shard, max(earlier))] > first[(shard, lease)]:
            overlaps += 1
    return overlaps


_ASKED = re.compile(r"asked \S+ to hand over lease (\S+) \(counter (\d+)\)")
_STOLE = re.compile(r"stole from \S+ lease (\S+) \(counter (\d+)\)")
_HANDED = re.compile(r"took lease (\S+), handed over by \S+ after ([\d.]+)s \(counter (\d+)\)")
_TIMED_OUT = re.compile(
    r"took lease (\S+), handoff from \S+ timed out after ([\d.]+)s \(counter (\d+)\)"
)


@dataclass
class LeaseLog:
    """Balance steals as the workers logged them."""

    asked: int = 0
    plain: set[tuple[str, int]] = field(default_factory=set)  # steals without a handoff
    handed_over: dict[tuple[str, int], float] = field(default_factory=dict)  # -> seconds
    timed_out: dict[tuple[str, int], float] = field(default_factory=dict)
    given_up: int = 0

    @property
    def steals(self) -> set[tuple[str, int]]:
        """(shard, lease counter) of every acquisition that completed a balance steal."""
        return self.plain | set(self.handed_over) | set(self.timed_out)


def parse_lease_log(text: str) -> LeaseLog:
    """Read the coordinators' INFO lines about steals and handoffs."""
    log = LeaseLog(
        asked=len(_ASKED.findall(text)), given_up=text.count("gave up the handoff of lease")
    )
    log.plain = {(key, int(counter)) for key, counter in _STOLE.findall(text)}
    log.handed_over = {(k, int(c)): float(s) for k, s, c in _HANDED.findall(text)}
    log.timed_out = {(k, int(c)): float(s) for k, s, c in _TIMED_OUT.findall(text)}
    return log


def handoff_figures(log: LeaseLog) -> dict[str, Any]:
    durations = sorted(log.handed_over.values())
    p50 = round(statistics.median(durations), 2) if durations else "-"
    longest = round(durations[-1], 2) if durations else "-"
    return {
        "steals (handoffs asked / plain takes)": f"{log.asked} / {len(log.plain)}",
        "handoffs completed / timed out / given up": (
            f"{len(log.handed_over)} / {len(log.timed_out)} / {log.given_up}"
        ),
        "handoff duration p50 / max (s)": f"{p50} / {longest}",
    }


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
    rec: Recording,
    written: dict[str, int],
    parents: dict[str, str],
    stops: list[Stop],
    lease_log: LeaseLog | None = None,
) -> dict[str, Any]:
    """Every figure of the run, by name."""
    lease_log = lease_log or LeaseLog()
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
        "inits of a lease already lost (allowed)": inits_of_lost_leases(rec),
        "leases lost (processor told)": rec.lost_leases,
        **handoff_figures(lease_log),
        "SIGKILLs": sum(1 for s in stops if s.kind == "SIGKILL"),
        "SIGTERMs": sum(1 for s in stops if s.kind == "SIGTERM"),
        "longest gap after SIGKILL (s)": round(gaps["SIGKILL"], 2),
        "longest gap after SIGTERM (s)": round(gaps["SIGTERM"], 2),
        "overlapping deliveries after a steal": overlapping_deliveries(rec.rows, lease_log.steals),
    }


RULES = {
    "lost changes": "every written version of every key was processed",
    "per-key order violations": "a key's versions are first processed in increasing order",
    "duplicates without a failure": "duplicates only after a kill or a lease loss",
    "child before parent": "a child's first record after its parent's last",
    "stale checkpoints accepted": "a process that no longer held the lease cannot checkpoint",
    "overlapping deliveries after a steal": "after a balance steal, the old holder delivers "
    "nothing once the new one has begun",
}


def broken_rules(values: dict[str, Any]) -> list[str]:
    """The rules (see :data:`RULES`) whose figure is not 0."""
    return [f"{name} = {values[name]}: {rule}" for name, rule in RULES.items() if values[name]]
