"""children.die_with_parent (the kernel's parent-death signal) and StopSignals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shardline.children import StopSignals

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl")

PARENT = """
import subprocess, sys, time
from shardline.children import die_with_parent
child = subprocess.Popen(["sleep", "1000"], preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(1000)
"""


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


@linux_only
def test_a_child_dies_when_its_parent_is_killed() -> None:
    """``sleep`` ignores its stdin and has no peer: only the kernel's signal can end it."""
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, process_group=0
    ) as parent:  # closes its stdout pipe
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _state(child) not in (None, "Z")
        parent.kill()
        parent.wait()
    try:
        for _ in range(1200):  # a hang guard of about a minute, not a timing assertion
            if _state(child) in (None, "Z"):
                break
            time.sleep(0.05)
        assert _state(child) in (None, "Z")
    finally:
        if _state(child) not in (None, "Z"):
            os.kill(child, signal.SIGKILL)


def test_stop_signals_first_stops_second_escalates() -> None:
    seconds: list[int] = []
    calls: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals(on_second=seconds.append) as signals:
        remove = signals.on_stop(lambda: calls.append("a"))
        signals.on_stop(lambda: calls.append("b"))
        remove()
        assert not signals.stopping
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.signum == signal.SIGTERM and calls == ["b"]
        os.kill(os.getpid(), signal.SIGINT)
        assert seconds == [signal.SIGINT] and calls == ["b"]
        late: list[str] = []
        signals.on_stop(lambda: late.append("late"))
        assert late == ["late"]  # added after the signal: called at once
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_signals_handle_a_sigint_that_was_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopSignals() as signals:
            os.kill(os.getpid(), signal.SIGINT)
            assert signals.signum == signal.SIGINT
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
