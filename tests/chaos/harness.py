"""Processes and threads of a chaos run: the local stack, workers, the writer, the driver."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from shardline.local.control import LocalControl
from shardline.local.settings import LOCAL
from tests.chaos.checks import Stop

MIN_AGE = 0.5  # seconds a worker lives before the driver may signal it
ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **LOCAL.child_env(os.environ),
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
}


class StackProcess:
    """``python -m shardline.local`` in a child process; the endpoint is read from stdout."""

    def __init__(self, log_path: Path, *flags: str) -> None:
        command = [sys.executable, "-m", "shardline.local", "--port", "0", *flags]
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"http://[\d.]+:\d+", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"the local stack did not start: {line!r} (see {log_path})")
        self.endpoint_url = match.group(0)
        self.control = LocalControl(self.endpoint_url)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


class ChaosWorker:
    """``shardline run tests.chaos.recorder:ChaosRecorder`` in a child process.

    ``processor`` ``None`` runs no processor (the sink mode passes ``--sink`` in ``extra``).
    """

    def __init__(
        self,
        worker_id: str,
        endpoint: str,
        table: str,
        app: str,
        out: Path,
        failover: float,
        delay: float,
        extra: tuple[str, ...] = (),
        processor: str | None = "tests.chaos.recorder:ChaosRecorder",
    ) -> None:
        self.worker_id = worker_id
        command = [
            sys.executable, "-m", "shardline.cli", "--log-level", "INFO", "run",
            *([processor] if processor else []), "--table", table, "--application", app,
            "--endpoint-url", endpoint, "--worker-id", worker_id,
            "--failover-time", str(failover), "--idle-time", "0.1",
            "--shard-sync-interval", "5", "--shutdown-grace", "10", *extra,
        ]  # fmt: skip
        env = {**ENV, "CHAOS_FILE": str(out / "records.txt"), "CHAOS_WORKER": worker_id,
               "CHAOS_DELAY": str(delay)}  # fmt: skip
        self.log_path = out / f"worker-{worker_id}.log"
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
        self.pid = str(self.process.pid)
        self.started = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.started

    def alive(self) -> bool:
        return self.process.poll() is None

    def reap(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


class Writer(threading.Thread):
    """Writes versioned changes (``pk``, ``version``) over ``keys`` keys at a steady pace."""

    def __init__(self, endpoint: str, table: str, keys: int, changes: int, seconds: float) -> None:
        super().__init__(name="chaos-writer", daemon=True)
        self.client = boto3.client("dynamodb", endpoint_url=endpoint, region_name=LOCAL.region)
        self.table = table
        self.keys = [f"key-{i:03d}" for i in range(keys)]
        self.changes = changes
        self.seconds = seconds
        self.written: dict[str, int] = defaultdict(int)
        self.errors = 0

    def run(self) -> None:
        started = time.monotonic()
        done, cursor = 0, 0
        while done < self.changes:
            size = min(25, len(self.keys), self.changes - done)
            batch = [self.keys[(cursor + i) % len(self.keys)] for i in range(size)]
            cursor += size
            self._write(batch)
            done += size
            ahead = started + self.seconds * done / self.changes - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def _write(self, keys: list[str]) -> None:
        items = [
            {"PutRequest": {"Item": {"pk": {"S": k}, "version": {"N": str(self.written[k] + 1)}}}}
            for k in keys
        ]
        pending: dict[str, Any] = {self.table: items}
        while pending:
            try:
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems")
            except Exception:
                self.errors += 1  # the writer's table has no faults; retry the batch
                time.sleep(0.2)
        for k in keys:
            self.written[k] += 1


class Driver(threading.Thread):
    """At random moments: SIGKILL, SIGTERM, restart and add workers, switch fault bursts on.

    Step ``n`` draws from its own generator, seeded from ``rng`` and ``n``, so a seed
    replays the same schedule (pauses, actions, faults) even when a step finds fewer
    workers to choose from than it did the first time.
    """

    def __init__(
        self,
        spawn: Callable[[str], ChaosWorker],
        control: LocalControl,
        app: str,
        seconds: float,
        rng: random.Random,
        *,
        min_workers: int = 3,
        max_workers: int = 5,
        pause: tuple[float, float] = (2.0, 6.0),
    ) -> None:
        super().__init__(name="chaos-driver", daemon=True)
        self.spawn = spawn
        self.control = control
        self.app = app
        self.seconds = seconds
        self.rng = rng
        self._schedule_seed = rng.randrange(1 << 30)
        self.min_workers = min_workers
        self.max_workers = max_workers
        self.pause = pause
        self.workers: list[ChaosWorker] = []
        self.stops: list[Stop] = []
        self.actions: dict[str, int] = defaultdict(int)
        self.exit_codes: list[int | None] = []  # of the final SIGTERM
        self.term_codes: list[int | None] = []  # of the driver's SIGTERMs
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._next_id = 0

    def start_workers(self, count: int) -> None:
        for _ in range(count):
            self._add()

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        step = 0
        while time.monotonic() < deadline:
            step += 1
            self.rng = random.Random(self._schedule_seed * 1_000_003 + step)
            if self._halt.wait(self.rng.uniform(*self.pause)):
                break
            actions = {"kill": self._kill, "term": self._term, "fault": self._fault,
                       "add": self._add_worker}  # fmt: skip
            action = self.rng.choice(["kill", "term", "fault", "fault", "add"])
            self.actions[action] += 1
            actions[action]()

    def halt(self) -> None:
        self._halt.set()
        self.join()

    def alive(self) -> list[ChaosWorker]:
        with self._lock:
            return [w for w in self.workers if w.alive()]

    def ensure(self, count: int) -> None:
        while len(self.alive()) < count:
            self._add()

    def stop_all(self) -> None:
        # a signal within the interpreter's first milliseconds kills it before any
        # handler exists; give the youngest worker that long
        youngest = min((w.age() for w in self.alive()), default=MIN_AGE)
        time.sleep(max(0.0, MIN_AGE - youngest))
        for worker in self.alive():
            worker.process.send_signal(signal.SIGTERM)
        for worker in list(self.workers):
            if worker.process.returncode is None:
                self.exit_codes.append(worker.reap(60))

    # --- actions ---------------------------------------------------------------------

    def _add(self, worker_id: str | None = None) -> None:
        with self._lock:
            if worker_id is None:
                self._next_id += 1
                worker_id = f"w{self._next_id}"
            self.workers.append(self.spawn(worker_id))

    def _victim(self) -> ChaosWorker | None:
        alive = self.alive()
        grown = [w for w in alive if w.age() >= MIN_AGE]
        return self.rng.choice(grown) if len(alive) > 1 and grown else None

    def _kill(self) -> None:
        self._signal(signal.SIGKILL)

    def kill_one(self) -> None:
        """SIGKILL a worker now (and restart it as a driver's kill does)."""
        self.actions["kill"] += 1
        self._kill()

    def _term(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        victim = self._victim()
        if victim is None:
            return
        self.stops.append(Stop(time.time(), victim.pid, signal.Signals(signum).name))
        victim.process.send_signal(signum)
        same_id = self.rng.random() < 0.5
        delay = self.rng.uniform(0.5, 4.0)
        args = (victim, signum, same_id, delay)
        threading.Thread(target=self._restart, args=args, daemon=True).start()

    def _restart(self, victim: ChaosWorker, signum: int, same_id: bool, delay: float) -> None:
        code = victim.reap(60)
        if signum == signal.SIGTERM:
            self.term_codes.append(code)
        if self._halt.wait(delay):
            return
        if same_id or len(self.alive()) < self.min_workers:
            self._add(victim.worker_id if same_id else None)

    def _fault(self) -> None:
        bursts = [
            "throttle:ops=GetRecords,GetShardIterator:count=20",
            "throttle:ops=DescribeStream:count=5",
            "error:ops=streams:count=5",
            "drop:ops=streams:count=3",
            "empty:count=30",
            f"throttle:ops=writes:table={self.app}:count=10",
            f"race:ops=UpdateItem:table={self.app}:count=2",
            f"race:ops=UpdateItem:table={self.app}:count=1:applied=1",
            f"error:ops=UpdateItem,PutItem:table={self.app}:count=2:applied=1",
            f"drop:ops=UpdateItem:table={self.app}:count=1",
        ]
        try:
            self.control.add_fault(self.rng.choice(bursts))
        except Exception as exc:  # the run goes on; the figure says how many
            print(f"chaos: could not add a fault: {exc}", file=sys.stderr)

    def _add_worker(self) -> None:
        if len(self.alive()) < self.max_workers:
            self._add()
