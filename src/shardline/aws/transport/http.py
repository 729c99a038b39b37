"""A small HTTP/1.1 keep-alive client on asyncio, under the AWS JSON calls (:mod:`..client`).

aiohttp's client machinery costs ~0.15-0.2 ms of CPU per request; a worker polling 1000
shards sends ~2000 requests a second. This client does only what AWS JSON 1.0 needs -- one
POST of a small body of known length to one origin; a ``Content-Length``, chunked or
read-until-close response -- on an :class:`asyncio.Protocol` that parses the response
straight from ``data_received``. Connections are kept alive (LIFO reuse) with TCP keepalive,
opened with happy eyeballs (:mod:`.connect`); at most ``max_connections`` are open, and a
request whose reused connection was closed by the server before any response byte is
retried once on a fresh one. Each request may carry its own time limit and ask for a fresh
connection. Bodies are capped at ``max_body``; over TLS a body must be framed
(``Content-Length`` or chunked), since a close without ``close_notify`` cannot be told from
the end on every event loop. Not supported: other methods, redirects, proxies (see
:mod:`.proxy`), pipelining; gzip/deflate bodies are decoded by the caller
(:func:`.http_wire.decode_content`). Use one pool per event loop.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import unquote

from shardline.aws.transport.connect import open_socket
from shardline.aws.transport.http_wire import (
    CHUNKED,
    HEAD,
    IDLE,
    LENGTH,
    UNTIL_CLOSE,
    HttpBodyTooLargeError,
    HttpConnectError,
    HttpError,
    HttpProtocolError,
    HttpTimeoutError,
    describe,
    encode_request,
    framing,
    parse_head,
    parse_url,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "HttpBodyTooLargeError",
    "HttpConnectError",
    "HttpError",
    "HttpPool",
    "HttpProtocolError",
    "HttpResponse",
    "HttpTimeoutError",
]

DEFAULT_MAX_BODY: Final = 64 * 1024 * 1024
"""Largest response body accepted (AWS answers are at most a few MB)."""
_MAX_HEAD: Final = 64 * 1024  # longest response head, chunk-size line or trailer line
_MAX_INTERIM: Final = 10  # 1xx responses accepted before the real one
_HEX: Final = re.compile(rb"[0-9A-Fa-f]{1,15}")
_parse_url = parse_url  # the tests' name for it

_IDLE, _HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE = IDLE, HEAD, LENGTH, CHUNKED, UNTIL_CLOSE
_CHUNK_SIZE, _CHUNK_END, _TRAILER = range(3)  # where it is in a chunked body


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete response. Header names are lower-cased; repeated headers joined by ", "."""

    status: int
    headers: dict[str, str]
    body: bytes


class _ClosedBeforeResponse(HttpProtocolError):
    """The connection closed before any response byte: retriable once if it was reused."""


class _Connection(asyncio.Protocol):
    """One connection: sends one request at a time and parses its response as it arrives."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, label: str, *, tls: bool, max_body: int
    ) -> None:
        self._loop = loop
        self._label = label
        self._tls = tls
        self._max_body = max_body
        self._limit = 0.0  # the current request's time limit, for the timeout message
        self._size = 0  # body bytes of the current response so far (chunked, until close)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._state = _IDLE
        self._received = False
        self._interim = 0  # 1xx responses seen for the current request
        self._pending = bytearray()  # an unfinished response head or chunk-size line
        self._status = 0
        self._headers: dict[str, str] = {}
        self._keep_alive = False
        self._body: list[bytes] = []
        self._remaining = 0
        self._chunk_phase = _CHUNK_SIZE
        self._chunk_left = 0
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0

    def send(
        self, request: bytes, timeout: float, limit: float | None = None
    ) -> asyncio.Future[HttpResponse]:
        """Write ``request``; the returned future gets the response or an HttpError
        (:class:`HttpTimeoutError` when it is not complete within ``timeout`` seconds;
        its message names ``limit``, the request's whole time limit, if given)."""
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            raise _ClosedBeforeResponse(f"connection to {self._label} was closed while idle")
        loop = self._loop
        waiter = self._waiter = loop.create_future()
        self._state = _HEAD
        self._received = False
        self._interim = 0
        self._limit = timeout if limit is None else limit
        transport.write(request)
        self._timer = loop.call_at(loop.time() + timeout, self._on_timeout)
        return waiter

    def close(self, *, abort: bool = False) -> None:
        """Close gracefully, or at once; a pending request is left to its caller."""
        self._finish()
        self.closed = True
        self.reusable = False
        if self._transport is not None:
            self._transport.abort() if abort else self._transport.close()

    def fail(self, error: HttpError) -> None:
        """Fail the pending request, if any, with ``error`` and drop the connection."""
        waiter = self._finish()
        self.close(abort=True)
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is unusable
            self.close(abort=True)
            return
        self._received = True
        try:
            self._feed(data)
        except HttpProtocolError as error:
            self.fail(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None:
            return
        if self._state == _UNTIL_CLOSE and exc is None:
            self._complete(extra=False)
            return
        cause = f": {describe(exc)}" if exc is not None else ""
        kind = HttpProtocolError if self._received else _ClosedBeforeResponse
        what = "mid-response" if self._received else "before any response byte arrived"
        error = kind(f"connection to {self._label} closed {what}{cause}")
        error.__cause__ = exc
        self.fail(error)

    def _on_timeout(self) -> None:
        self._timer = None
        message = f"no complete response from {self._label} within {self._limit:g} s"
        self.fail(HttpTimeoutError(message))

    def _feed(self, data: bytes) -> None:
        state = self._state
        if state == _LENGTH:
            self._feed_length(data)
        elif state == _HEAD:
            self._feed_head(data)
        elif state == _CHUNKED:
            self._feed_chunked(data)
        else:  # _UNTIL_CLOSE
            self._count(len(data))
            self._body.append(data)

    def _feed_head(self, data: bytes) -> None:
        pending = self._pending
        start = max(len(pending) - 3, 0)  # the blank line may straddle two reads
        pending += data
        end = pending.find(b"\r\n\r\n", start)
        if end < 0:
            if len(pending) > _MAX_HEAD:
                raise HttpProtocolError(f"response head from {self._label} exceeds {_MAX_HEAD}")
            return
        rest = data[end + 4 + len(data) - len(pending) :]
        block = bytes(pending[:end])
        pending.clear()
        self._on_head(block, rest)

    def _on_head(self, block: bytes, rest: bytes) -> None:
        status, http11, headers = parse_head(block, self._label)
        if status < 200:
            if status == 101:
                raise HttpProtocolError(f"unexpected 101 Switching Protocols from {self._label}")
            self._interim += 1
            if self._interim > _MAX_INTERIM:
                raise HttpProtocolError(
                    f"more than {_MAX_INTERIM} interim responses from {self._label}"
                )
            if rest:  # an interim response (100 Continue): the real one follows
                self._feed(rest)
            return
        mode, length, self._keep_alive = framing(status, http11, headers, self._label)
        if mode == _UNTIL_CLOSE and self._tls:
            raise HttpProtocolError(
                f"answer from {self._label} has neither Content-Length nor chunked framing;"
                " over TLS its end cannot be told from a truncation"
            )
        if length > self._max_body:
            raise self._too_large(f"Content-Length {length}")
        self._size = 0
        self._status = status
        self._headers = headers
        if mode == _IDLE or (mode == _LENGTH and length == 0):
            self._complete(extra=bool(rest))
            return
        self._state = mode
        self._remaining = length
        self._chunk_phase = _CHUNK_SIZE
        self._chunk_left = 0
        if rest:
            self._feed(rest)

    def _feed_length(self, data: bytes) -> None:
        needed = self._remaining
        if len(data) < needed:
            self._body.append(data)
            self._remaining = needed - len(data)
            return
        self._body.append(data if len(data) == needed else data[:needed])
        self._complete(extra=len(data) > needed)

    def _feed_chunked(self, data: bytes) -> None:
        pending = self._pending
        if pending:
            data = bytes(pending) + data
            pending.clear()
        pos, size = 0, len(data)
        while pos < size:
            left = self._chunk_left
            if left:
                taken = data if pos == 0 and size <= left else data[pos : pos + left]
                self._count(len(taken))
                self._body.append(taken)
                pos += len(taken)
                self._chunk_left = left - len(taken)
                continue
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                pending += data[pos:]
                if len(pending) > _MAX_HEAD:
                    raise HttpProtocolError(f"chunk line from {self._label} is too long")
                return
            if self._chunk_line(data[pos:eol]):
                self._complete(extra=eol + 2 < size)
                return
            pos = eol + 2

    def _chunk_line(self, line: bytes) -> bool:
        """Handle one line of a chunked body; True when the body (and trailers) ended."""
        phase = self._chunk_phase
        if phase == _CHUNK_SIZE:
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise HttpProtocolError(f"bad chunk size from {self._label}: {line[:40]!r}")
            self._chunk_left = int(size_text, 16)
            self._chunk_phase = _CHUNK_END if self._chunk_left else _TRAILER
        elif phase == _CHUNK_END:
            if line:
                raise HttpProtocolError(f"chunk from {self._label} is longer than its size")
            self._chunk_phase = _CHUNK_SIZE
        elif not line:  # the empty line after the (ignored) trailer fields
            return True
        return False

    def _complete(self, *, extra: bool) -> None:
        body = self._body
        payload = body[0] if len(body) == 1 else b"".join(body)
        response = HttpResponse(self._status, self._headers, payload)
        reusable = self._keep_alive and not extra and not self.closed
        waiter = self._finish()
        self.reusable = reusable
        self.idle_since = self._loop.time()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _count(self, size: int) -> None:
        self._size += size
        if self._size > self._max_body:
            raise self._too_large(f"{self._size} bytes so far")

    def _too_large(self, what: str) -> HttpBodyTooLargeError:
        return HttpBodyTooLargeError(
            f"answer from {self._label} is larger than the {self._max_body}-byte cap ({what})"
        )

    def _finish(self) -> asyncio.Future[HttpResponse] | None:
        """End the current exchange: stop its timer, reset the parser, hand back its waiter."""
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._state = _IDLE
        self._body = []
        return waiter


class HttpPool:
    """Keep-alive connections to one origin (scheme, host, port)."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 512,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = 30.0,
        max_body: int = DEFAULT_MAX_BODY,
        happy_eyeballs_delay: float = 0.25,
    ) -> None:
        """``url`` is the full endpoint URL; requests go to its path and query.

        ``read_timeout`` is the default time limit of a request, from sending it to having
        its complete answer; ``ssl_context`` defaults to the system's trust store."""
        scheme, host, port, target, host_header = _parse_url(url)
        if max_connections < 1 or connect_timeout <= 0 or read_timeout <= 0 or idle_timeout < 0:
            raise ValueError("need max_connections >= 1, timeouts > 0 and idle_timeout >= 0")
        if max_body < 1 or happy_eyeballs_delay <= 0:
            raise ValueError("need max_body >= 1 and happy_eyeballs_delay > 0")
        self._host = unquote(host)  # an IPv6 zone is written %25 in URLs
        self._port = port
        self._label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._prefix = f"POST {target} HTTP/1.1\r\nHost: {host_header}\r\nContent-Length: "
        self._tls = scheme == "https"
        self._ssl_context = ssl_context
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle_timeout = idle_timeout
        self._max_body = max_body
        self._eyeballs_delay = happy_eyeballs_delay
        self._idle: deque[_Connection] = deque()  # oldest first; reuse from the right
        self._busy: set[_Connection] = set()
        self._active = 0  # requests holding a slot (each uses at most one connection)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._checked_names: set[str] = set()  # header names already validated
        self._generation = 0  # close() moves it on: connections opened before are not kept

    async def post(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float | None = None,
        fresh: bool = False,
    ) -> HttpResponse:
        """POST ``body`` with ``headers`` (not Host or Content-Length); read the response.

        ``timeout`` (default ``read_timeout``) bounds the whole request once it has a
        connection slot: connecting (also capped by ``connect_timeout``), sending, and the
        complete answer. ``fresh`` skips the idle connections (after a failure that may
        mean they are all dead). Raises an :class:`HttpError`, or ``ValueError`` for
        headers that cannot be sent."""
        request = self._encode(body, headers)
        loop = asyncio.get_running_loop()
        if self._active < self._max and not self._waiters:
            self._active += 1
        else:
            await self._wait_for_slot(loop)
        try:
            limit = self._read_timeout if timeout is None else timeout
            return await self._send(loop, request, self._generation, limit, fresh)
        finally:
            self._release_slot()

    async def close(self) -> None:
        """Close every connection; requests in flight fail. The pool may be used again."""
        self._generation += 1
        idle, self._idle = self._idle, deque()
        busy, self._busy = self._busy, set()
        for conn in idle:
            conn.close()
        for conn in busy:
            conn.fail(HttpProtocolError(f"connection to {self._label} closed by HttpPool.close()"))
        await asyncio.sleep(0)  # let the transports report connection_lost

    def _encode(self, body: bytes, headers: Mapping[str, str]) -> bytes:
        return encode_request(self._prefix, body, headers, self._checked_names)

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # a slot was handed over: pass it on
                self._release_slot()
            raise

    def _release_slot(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the next caller
                return
        self._active -= 1

    async def _send(
        self,
        loop: asyncio.AbstractEventLoop,
        request: bytes,
        generation: int,
        limit: float,
        fresh: bool,
    ) -> HttpResponse:
        deadline = loop.time() + limit
        conn = None if fresh else self._pop_idle(loop)
        if conn is not None:
            try:
                return await self._exchange(
                    conn, request, generation, deadline - loop.time(), limit
                )
            except _ClosedBeforeResponse:
                pass  # the server closed it while idle: retry once on a fresh connection
        conn = await self._connect(loop, deadline)
        return await self._exchange(conn, request, generation, deadline - loop.time(), limit)

    async def _exchange(
        self, conn: _Connection, request: bytes, generation: int, timeout: float, limit: float
    ) -> HttpResponse:
        waiter = conn.send(request, max(timeout, 0.0), limit)
        self._busy.add(conn)
        try:
            response = await waiter
        except BaseException:  # includes cancellation: the connection's state is unknown
            conn.close(abort=True)
            raise
        finally:
            self._busy.discard(conn)
        if conn.reusable and generation == self._generation:
            self._idle.append(conn)
        else:
            conn.close()
        return response

    def _pop_idle(self, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        idle = self._idle
        expired = loop.time() - self._idle_timeout
        while idle and idle[0].idle_since <= expired:
            idle.popleft().close()
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        """A new connection (happy eyeballs, TCP keepalive, TLS when https)."""
        conn = _Connection(loop, self._label, tls=self._tls, max_body=self._max_body)
        limit = max(min(self._connect_timeout, deadline - loop.time()), 0.0)
        ctx, sni = None, None
        try:
            if self._tls:
                ctx = self._ssl_context = self._ssl_context or ssl.create_default_context()
                sni = self._host
            async with asyncio.timeout(limit):
                sock = await open_socket(loop, self._host, self._port, delay=self._eyeballs_delay)
                try:
                    await loop.create_connection(
                        lambda: conn, sock=sock, ssl=ctx, server_hostname=sni
                    )
                except BaseException:
                    sock.close()
                    raise
        except (OSError, UnicodeError) as exc:  # TimeoutError, SSLError, gaierror; bad IDNA
            reason = describe(exc) if str(exc) else f"timed out after {limit:g} s"
            raise HttpConnectError(f"cannot connect to {self._label}: {reason}") from exc
        return conn
