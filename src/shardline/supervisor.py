"""Keeps a worker's background loops running, and never lets one vanish silently.

A loop (lease renewals, lease takes, shard sync) that raises is logged with its
traceback and started again after a backoff (1 s doubling to 30 s). A loop that keeps
dying — ``max_failures`` times without a ``healthy_after`` run in between — is given up:
``on_fatal`` is told (the worker stops and the process exits non-zero). A loop that
returns is finished; cancelling the supervisor cancels every loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shardline.retry import backoff_delay

log = logging.getLogger("shardline.supervisor")

__all__ = ["Restart", "Supervisor", "next_restart"]

LoopFactory = Callable[[], Awaitable[None]]
OnFatal = Callable[[str, BaseException], None]


@dataclass(frozen=True)
class Restart:
    """What to do after a loop died: wait ``delay`` and restart, or give up."""

    failures: int
    delay: float
    give_up: bool


def next_restart(
    failures: int, ran_for: float, *, max_failures: int, healthy_after: float
) -> Restart:
    """The decision after a loop that had failed ``failures`` times in a row died again
    after running ``ran_for`` seconds (a long healthy run starts the count afresh)."""
    failures = 1 if ran_for >= healthy_after else failures + 1
    return Restart(failures, backoff_delay(failures, 1.0, 30.0), failures >= max_failures)


class Supervisor:
    """Runs named background loops; see the module docstring."""

    def __init__(
        self,
        on_fatal: OnFatal,
        *,
        max_failures: int = 5,
        healthy_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_fatal = on_fatal
        self._max_failures = max_failures
        self._healthy_after = healthy_after
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, loop: LoopFactory) -> None:
        """Run ``loop()`` under supervision; ``name`` (unique) names it in the logs."""
        if name in self._tasks and not self._tasks[name].done():
            raise ValueError(f"a loop named {name!r} is running already")
        self._tasks[name] = asyncio.create_task(self._supervise(name, loop), name=name)

    async def stop(self) -> None:
        """Cancel every loop and wait for them to end."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _supervise(self, name: str, loop: LoopFactory) -> None:
        failures = 0
        while True:
            started = self._clock()
            try:
                await loop()
                return
            except Exception as exc:
                restart = next_restart(
                    failures,
                    self._clock() - started,
                    max_failures=self._max_failures,
                    healthy_after=self._healthy_after,
                )
                failures = restart.failures
                if restart.give_up:
                    log.critical(
                        "background loop %s died %d times in a row; stopping the worker",
                        name,
                        failures,
                        exc_info=True,
                    )
                    self._on_fatal(name, exc)
                    return
                log.error(
                    "background loop %s died; restarting it in %.0fs (failure %d of %d)",
                    name,
                    restart.delay,
                    failures,
                    self._max_failures,
                    exc_info=True,
                )
            await asyncio.sleep(restart.delay)
