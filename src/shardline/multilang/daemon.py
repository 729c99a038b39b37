"""The MultiLang daemon: a properties file in, a running ``shardline.Consumer`` out."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from shardline.errors import ConfigError
from shardline.multilang.processor import ChildRegistry, processor_class
from shardline.multilang.properties import decode_file_bytes, parse_properties
from shardline.multilang.settings import DaemonSettings, build_settings, consumer_kwargs
from shardline.runner import Consumer

__all__ = ["build_consumer", "load_settings", "run_daemon", "run_daemon_async"]

log = logging.getLogger("shardline.multilang")


def load_settings(path: str | os.PathLike[str]) -> DaemonSettings:
    """Read and map a properties file; log its notes; check the executable exists."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read properties file {source!r}: {exc.strerror}") from exc
    settings = build_settings(parse_properties(decode_file_bytes(data), source), source)
    for note in settings.notes:
        log.log(note.level, "%s", note.message)
    _check_executable(settings.child.command[0])
    return settings


def _check_executable(program: str) -> None:
    if shutil.which(program) is None:
        raise ConfigError(
            f"executableName: {program!r} is not an executable file nor a command on PATH"
        )


def build_consumer(settings: DaemonSettings, registry: ChildRegistry) -> Consumer:
    """A Consumer whose processor runs one child per lease."""
    return Consumer(processor_class(settings.child, registry), **consumer_kwargs(settings.consumer))


async def run_daemon_async(
    settings: DaemonSettings, stop: asyncio.Event | None = None, *, handle_signals: bool = False
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT with ``handle_signals``)."""
    registry = ChildRegistry()
    consumer = build_consumer(settings, registry)
    log.info(
        "multilang: %s, one child per lease: %s",
        settings.consumer.application,
        " ".join(settings.child.command),
    )
    try:
        await consumer.run_async(stop, handle_signals=handle_signals)
    finally:
        await registry.kill_all()


def run_daemon(path: str | os.PathLike[str]) -> int:
    """Load ``path`` and run until SIGTERM or SIGINT; returns the exit code."""
    settings = load_settings(path)
    from shardline.event_loop import run

    run(run_daemon_async(settings, handle_signals=True))
    return 0
