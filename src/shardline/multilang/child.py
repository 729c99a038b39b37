"""One MultiLang child process: start it, exchange protocol lines, stop it.

The child's stdout carries protocol lines; blank lines are skipped, other lines that are
not protocol messages are logged and skipped. Its stderr is forwarded to the log, one
line per log record, tagged with the shard id (text without a newline is forwarded once
the child has been quiet for a moment). Children run in their own session, so a Ctrl-C
in the daemon's terminal reaches them only through the protocol; on Linux the kernel
kills them when the daemon dies without stopping them (SIGKILL, OOM killer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence

from shardline.children import die_with_parent
from shardline.errors import ShardlineError
from shardline.multilang.protocol import ChildMessage, ProtocolError, decode_child_line

__all__ = ["ChildFailedError", "ChildProcess"]

log = logging.getLogger("shardline.multilang.child")
stderr_log = logging.getLogger("shardline.multilang.stderr")

_LINE_LIMIT = 1 << 20
_STDERR_QUIET = 0.25
_STDERR_CHUNK = 1 << 16


class ChildFailedError(ShardlineError):
    """The child crashed, exited, broke the protocol or took longer than allowed."""

    retriable = True


class ChildProcess:
    """A started child and the task that forwards its stderr."""

    def __init__(self, shard_id: str, process: asyncio.subprocess.Process) -> None:
        self.shard_id = shard_id
        self.process = process
        self._stderr_task = asyncio.create_task(self._forward_stderr(), name=f"stderr {shard_id}")

    @classmethod
    async def start(
        cls, shard_id: str, command: Sequence[str], env: dict[str, str] | None = None
    ) -> ChildProcess:
        """Start ``command``; raise :class:`ChildFailedError` when it cannot be started."""
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env if env is not None else dict(os.environ),
                limit=_LINE_LIMIT,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # SIGKILL when the daemon dies, even SIGKILLed
            )
        except OSError as exc:
            raise ChildFailedError(f"cannot start {' '.join(command)!r}: {exc}") from exc
        log.debug("shard %s: started child pid %d", shard_id, process.pid)
        return cls(shard_id, process)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    async def send(self, line: bytes) -> None:
        """Write one protocol line; a closed pipe means the child is gone."""
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(line)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError, RuntimeError) as exc:
            raise ChildFailedError(f"child of shard {self.shard_id} closed its stdin") from exc

    async def receive(self) -> ChildMessage:
        """The next protocol message; stray lines are logged and skipped."""
        stdout = self.process.stdout
        assert stdout is not None
        while True:
            try:
                line = await stdout.readline()
            except ValueError:
                log.info("shard %s: skipped an oversized line on the child's stdout", self.shard_id)
                continue
            if not line:
                code = await self._exit_code()
                raise ChildFailedError(
                    f"child of shard {self.shard_id} closed its stdout (exit code {code})"
                )
            try:
                message = decode_child_line(line)
            except ProtocolError as exc:
                raise ChildFailedError(f"child of shard {self.shard_id}: {exc}") from exc
            if message is not None:
                return message
            if line.strip():
                log.info(
                    "shard %s: skipping unexpected line on the child's stdout: %s",
                    self.shard_id,
                    _text(line),
                )

    async def close(self, timeout: float) -> None:
        """Close stdin, drain stdout, and wait up to ``timeout`` for the exit; then kill."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self._drain_stdout(), timeout)
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            log.warning(
                "shard %s: child pid %d did not exit %.1fs after its stdin closed; killing it",
                self.shard_id,
                self.pid,
                timeout,
            )
        await self.kill()

    async def kill(self) -> None:
        """Kill the child (if it still runs) and reap it."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()
        await asyncio.gather(self._stderr_task, return_exceptions=True)
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    async def _exit_code(self) -> int | None:
        try:
            return await asyncio.wait_for(self.process.wait(), 1.0)
        except TimeoutError:
            return None

    async def _drain_stdout(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        while line := await stdout.readline():
            if line.strip():
                log.info("shard %s: child stdout after the end: %s", self.shard_id, _text(line))

    async def _forward_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        pending = b""
        while True:
            try:
                timeout = _STDERR_QUIET if pending else None
                chunk = await asyncio.wait_for(stderr.read(_STDERR_CHUNK), timeout)
            except TimeoutError:
                self._log_stderr(pending)
                pending = b""
                continue
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._log_stderr(line)
            if len(pending) >= _STDERR_CHUNK:
                self._log_stderr(pending)
                pending = b""
        self._log_stderr(pending)

    def _log_stderr(self, data: bytes) -> None:
        if data.strip():
            stderr_log.info("shard %s: %s", self.shard_id, _text(data))


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").rstrip("\r\n")
