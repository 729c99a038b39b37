"""Choice of event loop (shardline.event_loop)."""

from __future__ import annotations

import asyncio
import builtins
import inspect
from typing import Any

import pytest

from shardline.errors import ConfigError
from shardline.event_loop import loop_factory, run

uvloop = pytest.importorskip("uvloop")


async def loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_auto_runs_on_uvloop_when_installed() -> None:
    assert run(loop_type()) is uvloop.Loop
    assert run(loop_type(), event_loop="uvloop") is uvloop.Loop


def test_asyncio_runs_on_the_standard_loop() -> None:
    assert not issubclass(run(loop_type(), event_loop="asyncio"), uvloop.Loop)


def test_unknown_choice_is_refused_and_the_coroutine_closed() -> None:
    coroutine = loop_type()
    with pytest.raises(ConfigError, match="one of auto, uvloop, asyncio, got 'tokio'"):
        run(coroutine, event_loop="tokio")
    # closed: no "never awaited" warning
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


def test_without_uvloop_auto_falls_back_and_uvloop_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert loop_factory("auto") is None
    with pytest.raises(ConfigError, match="uvloop' asked for, but it is not installed"):
        loop_factory("uvloop")


def test_cli_choices_match_the_event_loops() -> None:
    from shardline.cli import EVENT_LOOP_CHOICES
    from shardline.event_loop import EVENT_LOOPS

    assert EVENT_LOOP_CHOICES == EVENT_LOOPS
