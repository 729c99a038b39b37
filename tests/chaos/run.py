"""The chaos suite: ``python -m tests.chaos.run --duration SECONDS``.

A local stack in its own process (random rollovers and splits, parents left open,
children listed first, tiny DescribeStream pages, short iterator lifetimes, background
faults), three or more ``shardline run`` workers, a writer of versioned changes, and a
driver that SIGKILLs, SIGTERMs, restarts and adds workers and switches fault bursts on
through the stack's control channel. At the end it checks what the processors recorded
(see ``checks.py``), prints one table and exits 1 when a rule is broken.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3

from shardline.local.settings import LOCAL
from tests.chaos import checks
from tests.chaos.harness import ChaosWorker, Driver, StackProcess, Writer

BOUNDED = (
    "--duration 35 --changes 2500 --keys 50 --workers 3 --pause 2.5 5 --reshard-every 4 "
    "--drain-timeout 120"
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of chaos")
    parser.add_argument("--changes", type=int, help="changes to write (default: 20000+)")
    parser.add_argument("--keys", type=int, default=64)
    parser.add_argument("--workers", type=int, default=3, help="workers at the start")
    parser.add_argument("--max-workers", type=int, default=5)
    parser.add_argument("--failover-time", type=float, default=5.0)
    parser.add_argument("--reshard-every", type=float, default=6.0)
    parser.add_argument("--pause", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"))
    parser.add_argument("--drain-timeout", type=float, default=240.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--handoff-timeout", type=float, help="the workers' --handoff-timeout (0: no handoff)"
    )
    parser.add_argument(
        "--bounded", action="store_true", help=f"the bounded run of make test: {BOUNDED}"
    )
    parser.add_argument("--out", type=Path, help="directory for logs (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.bounded:
        given = sys.argv[1:] if argv is None else list(argv)
        args = parser.parse_args([*BOUNDED.split(), *given])
    if args.changes is None:
        args.changes = max(20_000, int(args.duration * 40))
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    return args


def stack_flags(args: argparse.Namespace, app: str) -> list[str]:
    """The local stack's shard changes and background faults for a chaos run."""
    faults = [
        "throttle:ops=GetRecords,GetShardIterator:rate=0.02",
        "throttle:ops=DescribeStream:rate=0.05",
        "error:ops=streams:rate=0.005",
        "drop:ops=GetRecords:rate=0.002",
        "empty:rate=0.05",
        f"throttle:ops=writes:table={app}:rate=0.01",
    ]
    return [
        "--reshard-every", str(args.reshard_every), "--max-open-shards", "6",
        "--parent-open-for", "1.0", "--iterator-ttl", "4", "--describe-page-size", "3",
        "--children-first", "--seed", str(args.seed),
        *[flag for spec in faults for flag in ("--fault", spec)],
    ]  # fmt: skip


def create_table(endpoint: str, table: str) -> None:
    boto3.client("dynamodb", endpoint_url=endpoint, region_name=LOCAL.region).create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def drained(out: Path, written: dict[str, int]) -> bool:
    rows = checks.parse(read_lines(out)).rows
    return checks.lost_changes(rows, written) == 0


def read_lines(out: Path) -> list[str]:
    path = out / "records.txt"
    return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []


def worker_logs(out: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in out.glob("worker-*.log"))


def log_counts(text: str) -> dict[str, int]:
    return {
        "'lost lease' log lines": text.count("lost lease"),
        "'may be LOST' log lines": text.count("may be LOST"),
        "tracebacks in worker logs": text.count("Traceback"),
    }


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    out = args.out or Path(tempfile.mkdtemp(prefix="shardline-chaos-"))
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    table, app = f"chaos-{uuid.uuid4().hex[:8]}", f"chaos-app-{uuid.uuid4().hex[:8]}"
    stack = StackProcess(out / "stack.log", *stack_flags(args, app))
    print(f"chaos: seed {args.seed}, logs in {out}, stack {stack.endpoint_url}", flush=True)
    extra = () if args.handoff_timeout is None else ("--handoff-timeout", str(args.handoff_timeout))
    driver: Driver | None = None
    try:
        create_table(stack.endpoint_url, table)

        def spawn(worker_id: str) -> ChaosWorker:
            return ChaosWorker(
                worker_id, stack.endpoint_url, table, app, out, args.failover_time, 0.05, extra
            )

        driver = Driver(spawn, stack.control, app, args.duration, rng,
                        max_workers=args.max_workers, pause=tuple(args.pause))  # fmt: skip
        driver.start_workers(args.workers)
        writer = Writer(stack.endpoint_url, table, args.keys, args.changes, args.duration * 0.9)
        started = time.monotonic()
        writer.start()
        driver.start()
        writer.join()
        driver.join(max(0.0, args.duration - (time.monotonic() - started)) + 1)
        driver.halt()
        stack.control.clear_faults()
        fired = stack.control.faults()["fired"]
        driver.ensure(args.workers)
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline and not drained(out, writer.written):
            time.sleep(1.0)
        drain_seconds = args.drain_timeout - max(0.0, deadline - time.monotonic())
        parents = {
            s["ShardId"]: s["ParentShardId"]
            for s in stack.control.shards(table)
            if "ParentShardId" in s
        }
        driver.stop_all()
        recording = checks.parse(read_lines(out))
        logs = worker_logs(out)
        values = checks.figures(
            recording, dict(writer.written), parents, driver.stops, checks.parse_lease_log(logs)
        )
        values.update(log_counts(logs))
        values["faults fired"] = ", ".join(f"{k} {v}" for k, v in sorted(fired.items()))
        values["driver actions"] = ", ".join(f"{k} {v}" for k, v in sorted(driver.actions.items()))
        values["drain after writes (s)"] = round(drain_seconds, 1)
        values["SIGTERM exit codes (driver / final)"] = (
            f"{sorted(set(driver.term_codes), key=str)} / {sorted(set(driver.exit_codes), key=str)}"
        )
        values["SIGTERM exits not 0"] = sum(
            1 for c in driver.term_codes + driver.exit_codes if c != 0
        )
        summary = {"seed": args.seed, "replay": replay_command(args),
                   "written": writer.written, "parents": parents, "values": values,
                   "stops": [[s.time, s.pid, s.kind] for s in driver.stops]}  # fmt: skip
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        broken = checks.broken_rules(values)
        if args.handoff_timeout == 0:  # measured, not a rule, without graceful handoff
            broken = [b for b in broken if not b.startswith("overlapping deliveries")]
        if values["SIGTERM exits not 0"]:
            broken.append(
                f"SIGTERM exits not 0 = {values['SIGTERM exits not 0']}: exit 0 on SIGTERM"
            )
        return values, broken
    finally:
        try:
            if driver is not None:
                driver.halt()
        finally:
            for worker in driver.alive() if driver is not None else []:
                worker.process.kill()
                worker.reap(10)
            stack.stop()


def print_table(values: dict[str, Any], broken: list[str], args: argparse.Namespace) -> None:
    width = max(len(name) for name in values)
    print(f"\nchaos run: duration {args.duration:g}s, seed {args.seed}")
    print(f"replay: {replay_command(args)}")
    print("-" * (width + 30))
    for name, value in values.items():
        mark = "  <-- BROKEN" if any(b.startswith(f"{name} =") for b in broken) else ""
        print(f"{name:<{width}}  {value}{mark}")
    print("-" * (width + 30))
    print("PASS" if not broken else "FAIL:\n  " + "\n  ".join(broken), flush=True)


def replay_command(args: argparse.Namespace) -> str:
    """The make command that replays this run's driver schedule."""
    parts = [f"make chaos SEED={args.seed}"]
    parts.append("BOUNDED=1" if args.bounded else f"DURATION={args.duration:g}")
    if args.handoff_timeout is not None:
        parts.append(f"CHAOS_ARGS='--handoff-timeout {args.handoff_timeout:g}'")
    return " ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    LOCAL.setdefault_credentials(os.environ)
    values, broken = run(args)
    print_table(values, broken, args)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
