"""The chaos suite with the PostgreSQL sink: ``python -m tests.chaos.sinks_run``.

The same local stack (rollovers, splits, faults), driver (SIGKILL, SIGTERM, restarts,
added workers, fault bursts) and writer as ``tests.chaos.run``, plus a deleter, but the
workers run no processor: each replicates into a private PostgreSQL server through two
sinks, ``mode=state`` and ``mode=changelog``. At the end:

* ``state rows unlike the source`` (must be 0): keys whose row differs from the item in
  the DynamoDB table, or that exist on one side only;
* ``changes missing from the changelog`` (must be 0): versions written but not in the
  changelog (a lost change);
* ``SIGTERM exits not 0`` and ``tracebacks in worker logs`` (must be 0).
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
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import psycopg

from tests.chaos.harness import ChaosWorker, Driver, StackProcess, Writer
from tests.chaos.run import create_table, stack_flags, worker_logs
from tests.postgres.server import PostgresServer

BOUNDED = "--duration 30 --changes 2000 --keys 40 --workers 3 --pause 2.5 5 --reshard-every 4"


class Deleter(threading.Thread):
    """Deletes a random key now and then (the writer brings it back with a new version)."""

    def __init__(self, endpoint: str, table: str, keys: int, seconds: float, rng: random.Random):
        super().__init__(name="chaos-deleter", daemon=True)
        self.client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
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
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
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


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    out = args.out or Path(tempfile.mkdtemp(prefix="shardline-chaos-sinks-"))
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    table, app = f"chaos-{uuid.uuid4().hex[:8]}", f"chaos-app-{uuid.uuid4().hex[:8]}"
    with PostgresServer() as server:
        dsn = server.create_database("chaos")
        stack = StackProcess(out / "stack.log", *stack_flags(args, app))
        print(f"chaos (sinks): seed {args.seed}, logs in {out}", flush=True)
        sinks = ("--sink", f"{dsn}?table=chaos_state",
                 "--sink", f"{dsn}?table=chaos_changes&mode=changelog")  # fmt: skip
        driver: Driver | None = None
        try:
            create_table(stack.endpoint_url, table)

            def spawn(worker_id: str) -> ChaosWorker:
                return ChaosWorker(worker_id, stack.endpoint_url, table, app, out,
                                   args.failover_time, 0.0, sinks, processor=None)  # fmt: skip

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
            deadline = time.monotonic() + args.drain_timeout
            while time.monotonic() < deadline and differing(source, replica_state(dsn)):
                time.sleep(1.0)
            driver.stop_all()
            written = {(k, v) for k, n in writer.written.items() for v in range(1, n + 1)}
            logs = worker_logs(out)
            values: dict[str, Any] = {
                "changes written": sum(writer.written.values()),
                "deletes": deleter.deleted,
                "items in the source at the end": len(source),
                "state rows unlike the source": differing(source, replica_state(dsn)),
                "changes missing from the changelog": len(written - changelog_versions(dsn)),
                "driver actions": ", ".join(f"{k} {v}" for k, v in sorted(driver.actions.items())),
                "SIGTERM exits not 0": sum(
                    1 for c in driver.term_codes + driver.exit_codes if c != 0
                ),
                "tracebacks in worker logs": logs.count("Traceback"),
            }
        finally:
            if driver is not None:
                driver.halt()
                for worker in driver.alive():
                    worker.process.kill()
            stack.stop()
    rules = ("state rows unlike the source", "changes missing from the changelog",
             "SIGTERM exits not 0", "tracebacks in worker logs")  # fmt: skip
    broken = [f"{name} = {values[name]}" for name in rules if values[name]]
    (out / "summary.json").write_text(json.dumps({"seed": args.seed, "values": values}, indent=1))
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
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    values, broken = run(args)
    width = max(len(name) for name in values)
    print(f"\nchaos run with the PostgreSQL sink: {args.duration:g}s, seed {args.seed}")
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
