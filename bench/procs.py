"""Child processes of the benchmarks: start pinned, wait for readiness, read /proc, stop.

Every server and worker runs in its own process so that each one's CPU can be pinned
and measured. CPU and memory figures are read from ``/proc/<pid>`` (Linux).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
SHARDLINE = str(Path(PYTHON).with_name("shardline"))
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def cpus() -> tuple[int, int]:
    """(consumer CPU, server CPU): the consumer gets the last allowed core."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    return allowed[-1], allowed[0]


def _pin(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@dataclass
class Child:
    """A child process whose stdout lines are collected by a reader thread."""

    process: subprocess.Popen[bytes]
    lines: list[bytes] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def json_lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in list(self.lines) if line.startswith(b"{")]

    def send(self, command: dict[str, Any]) -> Any:
        """Send one JSON command line (stack.py) and wait for its answer line."""
        assert self.process.stdin is not None
        before = len(self.lines)
        self.process.stdin.write(orjson.dumps(command) + b"\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + 30
        while len(self.lines) <= before:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"no answer to {command}")
            time.sleep(0.005)
        return orjson.loads(self.lines[before])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    args: list[str],
    *,
    cpu: int | None = None,
    env: dict[str, str] | None = None,
    stdin: bool = False,
    stderr: IO[bytes] | int | None = subprocess.DEVNULL,
    ready_timeout: float = 60.0,
    wait_ready: bool = True,
    cwd: Path = BENCH_DIR,
) -> Child:
    """Start ``args``; with ``wait_ready``, wait for a ``READY <port>`` line."""
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        preexec_fn=_pin(cpu),
    )
    child = Child(process)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(b"READY"):
                child.port = int(line.split()[1])
                child.ready.set()
            else:
                child.lines.append(line.rstrip(b"\n"))

    threading.Thread(target=read, daemon=True).start()
    if wait_ready and not child.ready.wait(ready_timeout):
        child.stop(signal.SIGKILL)
        raise RuntimeError(f"{args} did not become ready in {ready_timeout}s")
    return child


def start_replay(shards: int, mode: str, cpu: int | None, records: int = 1000) -> Child:
    args = [PYTHON, str(BENCH_DIR / "replay.py"), "--shards", str(shards), "--mode", mode]
    return start([*args, "--records", str(records)], cpu=cpu)


def start_stack(cpu: int | None) -> Child:
    return start([PYTHON, str(BENCH_DIR / "stack.py")], cpu=cpu, stdin=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of a process now."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
