"""The supervisor of background loops: restart with backoff, give up loudly, never vanish."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shardline.supervisor import Restart, Supervisor, next_restart


def test_a_loop_dying_again_and_again_is_given_up() -> None:
    decisions = []
    failures = 0
    for _ in range(5):
        restart = next_restart(failures, 0.5, max_failures=5, healthy_after=60)
        failures = restart.failures
        decisions.append(restart)
    assert [r.delay for r in decisions] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert [r.give_up for r in decisions] == [False, False, False, False, True]


def test_a_long_healthy_run_starts_the_count_afresh() -> None:
    assert next_restart(4, 61.0, max_failures=5, healthy_after=60) == Restart(1, 1.0, False)


async def test_a_dying_loop_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise KeyError("boom")
        done.set()
        await asyncio.Event().wait()

    fatal: list[str] = []
    supervisor = Supervisor(lambda name, error: fatal.append(name))
    with caplog.at_level(logging.ERROR, logger="shardline.supervisor"):
        supervisor.start("flaky", flaky)
        await asyncio.wait_for(done.wait(), 5)
        await supervisor.stop()
    assert runs == 2 and fatal == []
    assert "background loop flaky died; restarting it in 1s" in caplog.text
    assert "KeyError: 'boom'" in caplog.text  # with its traceback


async def test_a_loop_that_keeps_dying_is_reported_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise RuntimeError("always")

    fatal: list[tuple[str, str]] = []
    supervisor = Supervisor(lambda name, error: fatal.append((name, str(error))), max_failures=2)
    with caplog.at_level(logging.ERROR, logger="shardline.supervisor"):
        supervisor.start("broken", broken)
        for _ in range(100):
            if fatal:
                break
            await asyncio.sleep(0.05)
        await supervisor.stop()
    assert fatal == [("broken", "always")]
    assert "died 2 times in a row; stopping the worker" in caplog.text


async def test_names_are_unique_while_running() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    supervisor = Supervisor(lambda name, error: None)
    supervisor.start("one", forever)
    with pytest.raises(ValueError, match="running already"):
        supervisor.start("one", forever)
    await supervisor.stop()
