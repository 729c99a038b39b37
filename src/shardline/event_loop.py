"""Which asyncio event loop shardline runs on.

uvloop (libuv) runs the same asyncio code with less CPU per wake-up and per socket
read; with many mostly idle shards that is most of a worker's work (docs/performance.md).
It is used when installed, unless the user asks for the standard loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

from shardline.errors import ConfigError

__all__ = ["EVENT_LOOPS", "loop_factory", "run"]

T = TypeVar("T")

#: ``auto``: uvloop when it is installed, else asyncio's own loop.
EVENT_LOOPS: Final = ("auto", "uvloop", "asyncio")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str = "auto") -> LoopFactory | None:
    """The loop factory for ``choice`` (``None``: asyncio's default loop).

    Raises :class:`ConfigError` for an unknown choice, or for ``uvloop`` when it is not
    installed (it is not available on Windows).
    """
    if choice not in EVENT_LOOPS:
        raise ConfigError(f"event loop must be one of {', '.join(EVENT_LOOPS)}, got {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError("event loop 'uvloop' asked for, but it is not installed") from None
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def run(coroutine: Coroutine[Any, Any, T], *, event_loop: str = "auto") -> T:
    """``asyncio.run`` on the chosen event loop."""
    try:
        factory = loop_factory(event_loop)
    except ConfigError:
        coroutine.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)
