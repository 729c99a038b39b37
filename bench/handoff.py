"""Handoff and failover between two ``shardline run`` worker processes.

A table on the local stack is split into eight open shards; a writer thread puts ~10
items a second into each. Two workers (the ``shardline run`` command, default failover
time 10 s) share the leases; each logs every batch it handles (``handoff_app.py``).
Once both hold leases, one worker is stopped and we time, from the signal, how long it
takes until the other has handled a batch from every shard the stopped one held (read
from the lease table at the moment of the signal):

* SIGTERM: graceful shutdown releases the leases; target <= 2 s.
* SIGKILL: nothing is released; the leases expire; target <= failover time + 3 s.

After each trial a fresh worker joins and takes its share (stealing) before the next.
``BENCH_HANDOFF_SETTLE=5`` waits 5 s more before each signal, so that the survivor scans
the lease table at its quiet pace (``leases/scan_pace.py``) when the signal comes.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import procs
from latency import _keys_for, client, create_table

TABLE = "handoff"
APPLICATION = "handoff-app"
SHARDS = 8
FAILOVER = 10.0
SETTLE = float(os.environ.get("BENCH_HANDOFF_SETTLE", "0"))
"""Seconds to wait once both workers hold their share before the signal: with 5 or more,
the survivor scans at its quiet pace when the signal comes (the slow case)."""


class Fleet:
    def __init__(self, stack: procs.Child, logdir: Path) -> None:
        self.stack = stack
        self.logdir = logdir
        self.workers: dict[str, procs.Child] = {}
        self.count = 0
        self.ddb = client("dynamodb", stack.port)
        self.extra_env: dict[str, str] = {}

    def start_worker(self) -> str:
        self.count += 1
        name = f"worker-{self.count}"
        endpoint = f"http://127.0.0.1:{self.stack.port}"
        args = [
            "--log-level",
            os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "run",
            "handoff_app:handle",
            "--table",
            TABLE,
        ]
        args += ["--application", APPLICATION, "--endpoint-url", endpoint]
        args += ["--region", "us-east-1", "--worker-id", name]
        args += ["--failover-time", str(FAILOVER)]
        self.workers[name] = procs.start(
            [procs.SHARDLINE, *args],
            env={"BENCH_HANDOFF_LOG": str(self.logdir / f"{name}.log"), **self.extra_env},
            stderr=(self.logdir / f"{name}.err").open("wb"),
            wait_ready=False,
        )
        return name

    def owners(self) -> dict[str, str | None]:
        """Open shards (not finished) -> owner, from a consistent scan of the lease table."""
        try:
            items = self.ddb.scan(TableName=APPLICATION, ConsistentRead=True)["Items"]
        except self.ddb.exceptions.ResourceNotFoundException:
            return {}  # the workers have not created the lease table yet
        return {
            item["leaseKey"]["S"]: (item.get("leaseOwner") or {}).get("S")
            for item in items
            if item.get("checkpoint", {}).get("S") != "SHARD_END"
        }

    def wait_until_each_holds(
        self, names: list[str], open_shards: list[str], at_least: int, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owners = self.owners()
            held = [owners.get(shard) for shard in open_shards]
            if all(held.count(name) >= at_least for name in names):
                return
            time.sleep(0.25)
        errors = {p.name: p.read_text()[-600:] for p in self.logdir.glob("*.err")}
        raise RuntimeError(
            f"workers {names} did not each get {at_least} leases: {self.owners()} {errors}"
        )

    def wait_until_all_processed(self, open_shards: list[str], timeout: float) -> None:
        """Until some worker handled a batch of every open shard: right after the splits a
        child waits for its parent to be read to its end (parents first), and a trial
        that started then would time the parent, not the handoff."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen: set[str] = set()
            for name in self.workers:
                seen.update(self.processed_after(name, 0.0))
            if seen.issuperset(open_shards):
                return
            time.sleep(0.25)
        raise RuntimeError(f"not every open shard was processed within {timeout:.0f} s")

    def processed_after(self, name: str, since: float) -> dict[str, float]:
        """Shard -> first time ``name`` handled a batch of it after ``since``."""
        first: dict[str, float] = {}
        path = self.logdir / f"{name}.log"
        if path.exists():
            for line in path.read_text().splitlines():
                stamp, shard, _ = line.split()
                if float(stamp) > since and shard not in first:
                    first[shard] = float(stamp)
        return first


def trial(
    fleet: Fleet, open_shards: list[str], victim: str, survivor: str, sig: int, timeout: float
) -> dict[str, Any]:
    owners = fleet.owners()
    held = [shard for shard in open_shards if owners.get(shard) == victim]
    sent = time.time()
    fleet.workers[victim].process.send_signal(sig)
    deadline = time.monotonic() + timeout
    done: dict[str, float] = {}
    while time.monotonic() < deadline:
        done = fleet.processed_after(survivor, sent)
        if all(shard in done for shard in held):
            break
        time.sleep(0.05)
    fleet.workers[victim].stop(signal.SIGKILL, timeout=10)
    missing = [shard for shard in held if shard not in done]
    seconds = max(done[shard] for shard in held) - sent if held and not missing else None
    return {
        "signal": signal.Signals(sig).name,
        "shards_moved": len(held),
        "seconds": seconds,
        "missing": missing,
    }


def run_handoff(quick: bool, take_interval: float | None = None) -> dict[str, Any]:
    """``take_interval`` (experiment) overrides the workers' lease-table scan interval."""
    _, server_cpu = procs.cpus()
    repeats = 1 if quick else 3
    stack = procs.start_stack(server_cpu)
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="shardline-handoff-") as tmp:
        fleet = Fleet(stack, Path(tmp))
        if take_interval is not None:
            fleet.extra_env["BENCH_TAKE_INTERVAL"] = str(take_interval)
        try:
            create_table(fleet.ddb, TABLE)
            for _ in range(SHARDS - 1):
                stack.send({"cmd": "split", "table": TABLE})
            open_shards = sorted(fleet_open_shards(fleet))
            keys = _keys_for(stack, TABLE, open_shards, 5)

            def writer() -> None:
                ddb = client("dynamodb", stack.port)
                rng = random.Random(3)
                while not stop.is_set():
                    for shard in open_shards:
                        ddb.put_item(TableName=TABLE, Item={"pk": {"S": rng.choice(keys[shard])}})
                    time.sleep(0.1)

            threading.Thread(target=writer, daemon=True).start()
            older, newer = fleet.start_worker(), fleet.start_worker()
            fleet.wait_until_all_processed(open_shards, 60)
            results: list[dict[str, Any]] = []
            for _ in range(repeats):
                for sig, timeout in ((signal.SIGTERM, 15.0), (signal.SIGKILL, FAILOVER + 20)):
                    fleet.wait_until_each_holds([older, newer], open_shards, 3, 60)
                    time.sleep(SETTLE)
                    results.append(trial(fleet, open_shards, older, newer, sig, timeout))
                    older, newer = newer, fleet.start_worker()
        finally:
            stop.set()
            for worker in fleet.workers.values():
                worker.stop(signal.SIGKILL)
            stack.stop()
    summary: dict[str, Any] = {
        "failover_time_s": FAILOVER,
        "take_interval_s": take_interval or FAILOVER / 4,
        "settle_s": SETTLE,
        "shards": SHARDS,
        "trials": results,
    }
    for name, target in (("SIGTERM", 2.0), ("SIGKILL", FAILOVER + 3)):
        times = [r["seconds"] for r in results if r["signal"] == name]
        ok = [t for t in times if t is not None]
        summary[name] = {
            "median_s": statistics.median(ok) if ok else None,
            "max_s": max(ok) if ok else None,
            "failed_trials": len(times) - len(ok),
            "target_s": target,
            "met": bool(ok) and len(ok) == len(times) and max(ok) <= target,
        }
    return summary


def fleet_open_shards(fleet: Fleet) -> list[str]:
    streams = client("dynamodbstreams", fleet.stack.port)
    arn = fleet.ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    return [s["ShardId"] for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]


if __name__ == "__main__":
    import orjson

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    import sys

    interval = float(sys.argv[1]) if len(sys.argv) > 1 else None
    repeats_quick = len(sys.argv) <= 2
    result = run_handoff(quick=repeats_quick, take_interval=interval)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
