"""SIGTERM/SIGINT that arrive while a worker is still starting.

Before the event loop runs, Python's default SIGTERM action kills the process at once
(exit -15). A deployment that stops a worker just after starting it deserves the same
clean exit as any other: the CLI installs these handlers first thing, and the runner
turns a signal noted here into an ordinary graceful stop once its loop is up.
"""

from __future__ import annotations

import signal
from types import FrameType

_noted: int | None = None


def install() -> None:
    """Note SIGTERM and SIGINT instead of dying, until the runner takes over."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _note)


def noted() -> int | None:
    """The signal that arrived during start-up, if any."""
    return _noted


def _note(signum: int, frame: FrameType | None) -> None:
    global _noted
    _noted = signum
