"""Child processes that never outlive shardline (``shardline demo``'s workers,
``shardline multilang``'s record processors), and the stop signals of ``shardline demo``.

- :func:`die_with_parent` gives a ``preexec_fn`` for :class:`subprocess.Popen` /
  :func:`asyncio.create_subprocess_exec` that asks Linux to send the child a signal
  (``PR_SET_PDEATHSIG``, SIGKILL by default) when the parent dies -- also when the parent
  is SIGKILLed and has no chance to stop its children. The signal is tied to the *thread*
  that starts the child: start children from a thread that lives as long as the process
  (the main thread, or the event loop's). Elsewhere (not Linux) it gives ``None``.
- :class:`StopSignals` handles SIGTERM and SIGINT in the main thread, also when SIGINT was
  ignored at start (a command started with ``&`` from a script inherits SIGINT ignored,
  and Python then never raises KeyboardInterrupt): the first signal asks for a graceful
  stop, a second one calls ``on_second`` (typically: kill the children and exit).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

__all__ = ["StopSignals", "die_with_parent"]

_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@functools.cache
def _prctl() -> Any:
    """libc's ``prctl``, resolved once in the parent (never inside a forked child)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def die_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``signum`` when this process dies.

    ``None`` where the kernel has no parent-death signal. If this process died between
    the fork and the ``prctl`` call, the child sends ``signum`` to itself at once.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signum)

    return preexec


class StopSignals:
    """SIGTERM and SIGINT for a command with children; use as a context manager.

    On entering, handlers are installed for both signals (whatever their disposition was,
    SIG_IGN included); on leaving, the previous handlers come back. The first signal sets
    :attr:`signum` and calls every callback given to :meth:`on_stop`; a later one calls
    ``on_second(signum)``. Handlers run in the main thread between bytecodes, so a
    callback must be quick and must not block (``loop.call_soon_threadsafe`` is fine).
    """

    def __init__(self, on_second: Callable[[int], None] | None = None) -> None:
        self.signum: int | None = None
        self._on_second = on_second
        self._callbacks: list[Callable[[], object]] = []
        self._previous: dict[int, Any] = {}

    @property
    def stopping(self) -> bool:
        """True once a stop signal has arrived."""
        return self.signum is not None

    def on_stop(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback`` at the first signal (at once if it has arrived already);
        returns a function that removes it."""
        if self.stopping:
            callback()
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    def __enter__(self) -> StopSignals:
        for signum in _STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            if self._on_second is not None:
                self._on_second(signum)
            return
        self.signum = signum
        for callback in list(self._callbacks):
            callback()
