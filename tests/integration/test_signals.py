"""Commands that start child processes stop them on SIGTERM/SIGINT and never orphan them.

Each command runs in its own process group. The signal goes to the parent alone (as
``timeout``, ``docker stop`` or systemd send it), sometimes with SIGINT ignored at start
(as for a command started with ``&`` from a script). After the parent exits, nothing it
started may still run: not its process group, not a child in a session of its own.
SIGKILL, which no process can handle, is covered by the kernel's parent-death signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import create_stream_table, unique, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

FAKE_CHILD = Path(__file__).resolve().parents[1] / "compat" / "fake_child.py"
GUARD = 120.0  # seconds before a hang is reported; no timing is asserted


# --- the process table ------------------------------------------------------------------


def processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) for every process in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        table[int(entry)] = (int(ppid), int(pgrp), state)
    return table


def descendants(pid: int) -> set[int]:
    table = processes()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, (ppid, _, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def running(pids: set[int]) -> set[int]:
    """The pids still running (a zombie has exited and counts as gone)."""
    table = processes()
    return {pid for pid in pids if pid in table and table[pid][2] not in "ZX"}


def group_running(pgid: int) -> set[int]:
    return {pid for pid, (_, pgrp, state) in processes().items() if pgrp == pgid and state != "Z"}


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def start(
    argv: list[str], *, ignore_sigint: bool, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """Start ``argv`` as the leader of a new process group (SIGINT ignored, if asked)."""

    def setup() -> None:
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        argv,
        process_group=0,
        preexec_fn=setup,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def stop_and_check(process: subprocess.Popen[str], signum: int, children: set[int]) -> str:
    """Send ``signum`` to the parent alone; it must exit 0, leaving nothing running."""
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=GUARD)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, err
    assert not group_running(process.pid), err
    assert not running(children), err
    return err


def kill_and_check(process: subprocess.Popen[str], children: set[int]) -> None:
    """SIGKILL the parent; the kernel must end its children."""
    process.kill()
    process.wait()
    if process.stderr is not None:
        process.stderr.close()  # not read: the children may hold its other end
    try:
        wait_until(lambda: not running(children), GUARD, "the children to die with the parent")
    finally:
        for pid in running(children):
            os.kill(pid, signal.SIGKILL)


def wait_for_children(
    process: subprocess.Popen[str], count: int, match: Callable[[str], bool]
) -> set[int]:
    def found() -> set[int]:
        return {pid for pid in running(descendants(process.pid)) if match(command_line(pid))}

    wait_until(lambda: len(found()) >= count or process.poll() is not None, GUARD, "children")
    assert process.poll() is None, process.communicate()[1]
    return found()


# --- shardline demo -----------------------------------------------------------------------

DEMO = [sys.executable, "-m", "shardline.cli", "demo", "--writes-per-second", "5"]


def is_worker(cmdline: str) -> bool:
    return "shardline.cli" in cmdline and " run " in cmdline


@pytest.mark.parametrize(
    ("signum", "ignore_sigint"),
    [(signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGINT, True)],
    ids=["sigterm", "sigterm-sigint-ignored", "sigint-while-ignored-at-start"],
)
def test_demo_stops_its_workers(signum: int, ignore_sigint: bool) -> None:
    process = start(DEMO, ignore_sigint=ignore_sigint)
    workers = wait_for_children(process, 2, is_worker)
    stop_and_check(process, signum, workers)


def test_a_second_signal_kills_the_workers_at_once() -> None:
    process = start(DEMO, ignore_sigint=False)
    workers = wait_for_children(process, 2, is_worker)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=GUARD)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode in (0, 128 + signal.SIGTERM)  # 0: the first stop won the race
    wait_until(lambda: not running(workers), GUARD, "the workers to be gone")
    assert not group_running(process.pid)


def test_demo_workers_die_when_the_demo_is_killed() -> None:
    process = start(DEMO, ignore_sigint=False)
    workers = wait_for_children(process, 2, is_worker)
    kill_and_check(process, workers)


# --- shardline multilang ----------------------------------------------------------------


def multilang_properties(local_stack: Any, tmp_path: Path) -> Path:
    table = unique("sig")
    create_stream_table(local_stack.endpoint_url, table)
    local_stack.split(table)
    path = tmp_path / "app.properties"
    path.write_text(
        f"executableName = {sys.executable} {FAKE_CHILD}\napplicationName = {unique('sig-app')}\n"
        f"streamName = {table}\ninitialPositionInStream = TRIM_HORIZON\n"
        f"kinesisEndpoint = {local_stack.endpoint_url}\n"
        f"dynamoDBEndpoint = {local_stack.endpoint_url}\nregionName = us-east-1\n"
        "idleTimeBetweenReadsInMillis = 200\nfailoverTimeMillis = 3000\n"
        "shutdownGraceMillis = 2000\n"
    )
    return path


def is_child(cmdline: str) -> bool:
    return str(FAKE_CHILD) in cmdline


@pytest.mark.parametrize(
    ("signum", "ignore_sigint"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["sigterm", "sigint-while-ignored-at-start"],
)
def test_multilang_stops_its_children(
    local_stack: Any, tmp_path: Path, signum: int, ignore_sigint: bool
) -> None:
    properties = multilang_properties(local_stack, tmp_path)
    argv = [sys.executable, "-m", "shardline.cli", "multilang", str(properties)]
    process = start(argv, ignore_sigint=ignore_sigint, cwd=tmp_path)
    children = wait_for_children(process, 2, is_child)
    stop_and_check(process, signum, children)


def test_multilang_children_die_when_the_daemon_is_killed(local_stack: Any, tmp_path: Path) -> None:
    properties = multilang_properties(local_stack, tmp_path)
    argv = [sys.executable, "-m", "shardline.cli", "multilang", str(properties)]
    process = start(argv, ignore_sigint=False, cwd=tmp_path)
    children = wait_for_children(process, 2, is_child)
    kill_and_check(process, children)


# --- shardline local (threads only: it starts no process) ---------------------------------


def test_local_stack_stops_on_sigint_ignored_at_start() -> None:
    argv = [sys.executable, "-m", "shardline.cli", "local", "--port", "0"]
    process = subprocess.Popen(
        argv,
        process_group=0,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith("shardline local stack: http://")
    stop_and_check(process, signal.SIGINT, set())
