"""The chaos suite with sinks: ``python -m tests.chaos.sinks_run [--target archive]``.

The same local stack (rollovers, splits, faults), driver (SIGKILL, SIGTERM, restarts,
added workers, fault bursts) and writer as ``tests.chaos.run``, plus a deleter, but the
workers run no processor, only sinks. ``--target postgres`` (default): a private
PostgreSQL server, sinks ``mode=state`` and ``mode=changelog``; rules:

* ``state rows unlike the source`` (must be 0): keys whose row differs from the item in
  the DynamoDB table, or that exist on one side only;
* ``changes missing from the changelog`` (must be 0): versions written but not in the
  changelog (a lost change).

``--target archive``: a ``file://`` JSON Lines archive rolled every 2 s; rules:

* ``changes missing from the archive`` (must be 0);
* ``changes in two files`` (must be 0): one (shard, sequence number) in two places.

Both: ``SIGTERM exits not 0`` and ``tracebacks in worker logs`` (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import boto3
import psycopg

from shardline.local.settings import LOCAL
from tests.chaos.harness import ChaosWorker, Driver, StackProcess, Writer
from tests.chaos.run import create_table, stack_flags, worker_logs
from tests.postgres.server import PostgresServer

BOUNDED = "--duration 30 --changes 2000 --keys 40 --workers 3 --pause 2.5 5 --reshard-every 4"


class Deleter(threading.Thread):
    """Deletes a random key now and then (the writer brings it back with a new version)."""

    def __init__(self, endpoint: str, table: str, keys: int, seconds: float, rng: random.Random):
        super().__init__(name="chaos-deleter", daemon=True)
        self.client = boto3.client("dynamodb", endpoint_url=endpoint, region_name=LOCAL.region)
        self.table, self.keys, self.seconds, self.rng = table, keys, seconds, rng
        self.deleted = 0

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            time.sleep(self.rng.uniform(0.2, 0.6))
            key = f"key-{self.rng.randrange(self.keys):03d}"
            self.client.delete_item(TableName=self.table, Key={"pk": {"S": key}})
            self.deleted += 1


def source_state(endpoint: str, table: str) -> dict[str, int]:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name=LOCAL.region)
    state: dict[str, int] = {}
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            state[item["pk"]["S"]] = int(item["version"]["N"])
    return state


def replica_state(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        try:
            rows = conn.execute("SELECT pk, _item->>'version' FROM chaos_state").fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    return {pk: int(Decimal(version)) for pk, version in rows}


def changelog_versions(dsn: str) -> set[tuple[str, int]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT pk, _new_item->>'version' FROM chaos_changes WHERE _event_name <> 'REMOVE'"
        ).fetchall()
    return {(pk, int(Decimal(version))) for pk, version in rows}


def differing(source: dict[str, int], replica: dict[str, int]) -> int:
    return sum(1 for key in source.keys() | replica.keys() if source.get(key) != replica.get(key))


def archived_changes(root: Path) -> list[tuple[str, int, str, int]]:
    """(shard, sequence number, key, version) of every archived INSERT/MODIFY, all files."""
    found = []
    for path in sorted(root.rglob("*.jsonl")):
        if path.name.startswith("."):
            continue  # not published (a temporary file)
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["event_name"] == "REMOVE":
                found.append((row["shard_id"], int(row["sequence_number"]), "", 0))
                continue
            image = json.loads(row["new_image"])
            version = int(image["version"]["N"])
            found.append((row["shard_id"], int(row["sequence_number"]), image["pk"]["S"], version))
    return found


class Target(Protocol):
    """Where the chaos workers' sinks write, and the rules its contents must keep."""

    @property
    def rules(self) -> tuple[str, ...]: ...

    def sink_flags(self) -> tuple[str, ...]: ...

    def drained(self, source: dict[str, int], written: set[tuple[str, int]]) -> bool: ...

    def values(self, source: dict[str, int], written: set[tuple[str, int]]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class PostgresTarget:
    """Replication into PostgreSQL: the state table must equal the source."""

    rules = ("state rows unlike the source", "changes missing from the changelog")

    def __init__(self, out: Path) -> None:
        self.server = PostgresServer()
        self.server.start()
        self.dsn = self.server.create_database("chaos")

    def sink_flags(self) -> tuple[str, ...]:
        return ("--sink", f"{self.dsn}?table=chaos_state",
                "--sink", f"{self.dsn}?table=chaos_changes&mode=changelog")  # fmt: skip

    def drained(self, source: dict[str, int], written: set[tuple[str, int]]) -> bool:
        return differing(source, replica_state(self.dsn)) == 0

    def values(self, source: dict[str, int], written: set[tuple[str, int]]) -> dict[str, Any]:
        return {
            "state rows unlike the source": differing(source, replica_state(self.dsn)),
            "changes missing from the changelog": len(written - changelog_versions(self.dsn)),
        }

    def close(self) -> None:
        self.server.stop()


class ArchiveTarget:
    """An archive of JSON Lines files: every change in exactly one file."""

    rules = ("changes missing from the archive", "changes in two files")

    def __init__(self, out: Path) -> None:
        self.root = out / "archive"
        self.root.mkdir(parents=True, exist_ok=True)

    def sink_flags(self) -> tuple[str, ...]:
        return (
            "--sink",
            f"file://{self.root}?format=jsonl&compression=none&roll_seconds=2",
        )

    def drained(self, source: dict[str, int], written: set[tuple[str, int]]) -> bool:
        return not written - {(k, v) for _, _, k, v in archived_changes(self.root)}

    def values(self, source: dict[str, int], written: set[tuple[str, int]]) -> dict[str, Any]:
        changes = archived_changes(self.root)
        places = [(shard, seq) for shard, seq, _, _ in changes]
        return {
            "files": sum(1 for p in self.root.rglob("*.jsonl") if not p.name.startswith(".")),
            "changes missing from the archive": len(written - {(k, v) for *_, k, v in changes}),
            "changes in two files": len(places) - len(set(places)),
        }

    def close(self) -> None:
        return None


TARGETS: dict[str, Callable[[Path], Target]] = {
    "postgres": PostgresTarget,
    "archive": ArchiveTarget,
}


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    out = args.out or Path(tempfile.mkdtemp(prefix="shardline-chaos-sinks-"))
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    table, app = f"chaos-{uuid.uuid4().hex[:8]}", f"chaos-app-{uuid.uuid4().hex[:8]}"
    target = TARGETS[args.target](out)
    stack = StackProcess(out / "stack.log", *stack_flags(args, app))
    print(f"chaos ({args.target}): seed {args.seed}, logs in {out}", flush=True)
    driver: Driver | None = None
    try:
        create_table(stack.endpoint_url, table)

        def spawn(worker_id: str) -> ChaosWorker:
            flags = target.sink_flags()
            return ChaosWorker(worker_id, stack.endpoint_url, table, app, out,
                               args.failover_time, 0.0, flags, processor=None)  # fmt: skip

        driver = Driver(spawn, stack.control, app, args.duration, rng,
                        max_workers=args.max_workers, pause=tuple(args.pause))  # fmt: skip
        driver.start_workers(args.workers)
        seconds = args.duration * 0.9
        writer = Writer(stack.endpoint_url, table, args.keys, args.changes, seconds)
        deleter = Deleter(stack.endpoint_url, table, args.keys, seconds, rng)
        for thread in (writer, deleter, driver):
            thread.start()
        time.sleep(seconds / 2)
        driver.kill_one()  # at least one SIGKILL mid-stream, whatever the schedule
        writer.join()
        deleter.join()
        driver.halt()
        stack.control.clear_faults()
        driver.ensure(args.workers)
        source = source_state(stack.endpoint_url, table)
        written = {(k, v) for k, n in writer.written.items() for v in range(1, n + 1)}
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline and not target.drained(source, written):
            time.sleep(1.0)
        driver.stop_all()
        logs = worker_logs(out)
        values: dict[str, Any] = {
            "changes written": sum(writer.written.values()),
            "deletes": deleter.deleted,
            "items in the source at the end": len(source),
            **target.values(source, written),
            "driver actions": ", ".join(f"{k} {v}" for k, v in sorted(driver.actions.items())),
            "SIGTERM exits not 0": sum(1 for c in driver.term_codes + driver.exit_codes if c != 0),
            "tracebacks in worker logs": logs.count("Traceback"),
        }
    finally:
        if driver is not None:
            driver.halt()
            for worker in driver.alive():
                worker.process.kill()
                worker.reap(10)
        stack.stop()
        target.close()
    rules = (*target.rules, "SIGTERM exits not 0", "tracebacks in worker logs")
    broken = [f"{name} = {values[name]}" for name in rules if values[name]]
    summary = {"seed": args.seed, "target": args.target, "values": values}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return values, broken


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.sinks_run", description=__doc__)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--changes", type=int, default=8000)
    parser.add_argument("--keys", type=int, default=64)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--max-workers", type=int, default=5)
    parser.add_argument("--failover-time", type=float, default=5.0)
    parser.add_argument("--reshard-every", type=float, default=6.0)
    parser.add_argument("--pause", type=float, nargs=2, default=(2.0, 6.0))
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--bounded", action="store_true", help=f"the run of make test: {BOUNDED}")
    parser.add_argument("--target", choices=sorted(TARGETS), default="postgres")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.bounded:
        given = sys.argv[1:] if argv is None else list(argv)
        args = parser.parse_args([*BOUNDED.split(), *[g for g in given if g != "--bounded"]])
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    LOCAL.setdefault_credentials(os.environ)
    values, broken = run(args)
    width = max(len(name) for name in values)
    print(f"\nchaos run with the {args.target} sink: {args.duration:g}s, seed {args.seed}")
    for name, value in values.items():
        mark = "  <-- BROKEN" if any(b.startswith(f"{name} =") for b in broken) else ""
        print(f"{name:<{width}}  {value}{mark}")
    if broken:
        print("FAIL:\n  " + "\n  ".join(broken))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
