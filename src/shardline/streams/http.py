"""A small HTTP/1.1 keep-alive client on asyncio, for the AWS JSON calls of :mod:`.aws`.

aiohttp's client machinery costs ~0.15-0.2 ms of CPU per request; a worker polling 1000
shards sends ~2000 requests a second. This client does only what AWS JSON 1.0 needs -- one
POST of a small body of known length to one origin; a ``Content-Length``, chunked or
read-until-close response -- on an :class:`asyncio.Protocol` that parses the response
straight from ``data_received``. Connections are kept alive (LIFO reuse), at most
``max_connections`` are open, and a request whose reused connection was closed by the server
before any response byte is retried once on a fresh one. Not supported: other methods,
redirects, proxies, content encodings (send ``Accept-Encoding: identity``), pipelining.
Use one pool per event loop.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import unquote, urlsplit

__all__ = [
    "HttpConnectError",
    "HttpError",
    "HttpPool",
    "HttpProtocolError",
    "HttpResponse",
    "HttpTimeoutError",
]

_MAX_HEAD: Final = 64 * 1024  # longest response head, chunk-size line or trailer line
_MAX_INTERIM: Final = 10  # 1xx responses accepted before the real one
_DEFAULT_PORTS: Final[Mapping[str, int]] = {"http": 80, "https": 443}
_RESERVED_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding"})
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX: Final = re.compile(rb"[0-9A-Fa-f]{1,15}")
_DIGITS: Final = re.compile(r"[0-9]{1,18}")
_STATUS_LINE: Final = re.compile(r"HTTP/1\.([01]) ([0-9]{3})(?: |$)")
_UNSAFE_URL: Final = re.compile(r"[^\x21-\x7e]")
_Framing = tuple[int, int, bool]  # parser state for the body, Content-Length, keep-alive

_IDLE, _HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(5)  # what a connection is reading
_CHUNK_SIZE, _CHUNK_END, _TRAILER = range(3)  # where it is in a chunked body


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete response. Header names are lower-cased; repeated headers joined by ", "."""

    status: int
    headers: dict[str, str]
    body: bytes


class HttpError(Exception):
    """Base of the client's errors; the message names what happened and the host:port."""


class HttpConnectError(HttpError):
    """DNS, TCP connect or TLS handshake failure, or ``connect_timeout`` passed."""


class HttpTimeoutError(HttpError):
    """No complete response within ``read_timeout`` of sending the request."""


class HttpProtocolError(HttpError):
    """A malformed response, or the connection closed or reset mid-response."""


class _ClosedBeforeResponse(HttpProtocolError):
    """The connection closed before any response byte: retriable once if it was reused."""


class _Connection(asyncio.Protocol):
    """One connection: sends one request at a time and parses its response as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, label: str, read_timeout: float) -> None:
        self._loop = loop
        self._label = label
        self._read_timeout = read_timeout
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

    def send(self, request: bytes) -> asyncio.Future[HttpResponse]:
        """Write ``request``; the returned future gets the response or an HttpError."""
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            raise _ClosedBeforeResponse(f"connection to {self._label} was closed while idle")
        loop = self._loop
        waiter = self._waiter = loop.create_future()
        self._state = _HEAD
        self._received = False
        self._interim = 0
        transport.write(request)
        self._timer = loop.call_at(loop.time() + self._read_timeout, self._on_timeout)
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
        cause = f": {_describe(exc)}" if exc is not None else ""
        kind = HttpProtocolError if self._received else _ClosedBeforeResponse
        what = "mid-response" if self._received else "before any response byte arrived"
        error = kind(f"connection to {self._label} closed {what}{cause}")
        error.__cause__ = exc
        self.fail(error)

    def _on_timeout(self) -> None:
        self._timer = None
        message = f"no complete response from {self._label} within {self._read_timeout:g} s"
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
        status, http11, headers = _parse_head(block, self._label)
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
        mode, length, self._keep_alive = _framing(status, http11, headers, self._label)
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

    def _finish(self) -> asyncio.Future[HttpResponse] | None:
        """End the current exchange: stop its timer, reset the parser, hand back its waiter."""
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._state = _IDLE
        self._body = []
        return waiter


def _parse_head(block: bytes, label: str) -> tuple[int, bool, dict[str, str]]:
    """Status code, whether HTTP/1.1, and headers from a response head (without CRLFCRLF)."""
    lines = block.decode("latin-1").split("\r\n")
    status_line = _STATUS_LINE.match(lines[0])
    if status_line is None:
        raise HttpProtocolError(f"malformed status line from {label}: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name[0] in " \t" or name[-1] in " \t":
            raise HttpProtocolError(f"malformed header line from {label}: {line[:80]!r}")
        name = name.lower()
        value = value.strip(" \t")
        previous = headers.get(name)
        headers[name] = value if previous is None else f"{previous}, {value}"
    return int(status_line[2]), status_line[1] == "1", headers


def _framing(status: int, http11: bool, headers: dict[str, str], label: str) -> _Framing:
    """How the body is delimited (state, length) and whether the connection stays open."""
    connection = headers.get("connection")
    tokens = {t.strip() for t in connection.lower().split(",")} if connection else set()
    keep_alive = "close" not in tokens if http11 else "keep-alive" in tokens
    if status in (204, 304):
        return _IDLE, 0, keep_alive
    coding = headers.get("transfer-encoding")
    if coding is not None:
        chunked = coding.rpartition(",")[2].strip().lower() == "chunked"
        keep_alive = keep_alive and chunked and "content-length" not in headers
        return (_CHUNKED if chunked else _UNTIL_CLOSE), 0, keep_alive
    length = headers.get("content-length")
    if length is None:
        return _UNTIL_CLOSE, 0, False
    values = {v.strip() for v in length.split(",")}  # "5, 5" from repeated headers
    if len(values) != 1 or not _DIGITS.fullmatch(value := values.pop()):
        raise HttpProtocolError(f"bad Content-Length from {label}: {length!r}")
    return _LENGTH, int(value), keep_alive


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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
    ) -> None:
        """``url`` is the full endpoint URL; requests go to its path and query."""
        scheme, host, port, target, host_header = _parse_url(url)
        if max_connections < 1 or connect_timeout <= 0 or read_timeout <= 0 or idle_timeout < 0:
            raise ValueError("need max_connections >= 1, timeouts > 0 and idle_timeout >= 0")
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
        self._idle: deque[_Connection] = deque()  # oldest first; reuse from the right
        self._busy: set[_Connection] = set()
        self._active = 0  # requests holding a slot (each uses at most one connection)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._checked_names: set[str] = set()  # header names already validated
        self._generation = 0  # close() moves it on: connections opened before are not kept

    async def post(self, body: bytes, headers: Mapping[str, str]) -> HttpResponse:
        """POST ``body`` with ``headers`` (not Host or Content-Length); read the response.
        Raises an :class:`HttpError`, or ``ValueError`` for headers that cannot be sent."""
        request = self._encode(body, headers)
        loop = asyncio.get_running_loop()
        if self._active < self._max and not self._waiters:
            self._active += 1
        else:
            await self._wait_for_slot(loop)
        try:
            return await self._send(loop, request, self._generation)
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
        parts = [self._prefix, str(len(body)), "\r\n"]
        checked = self._checked_names
        for name, value in headers.items():
            if name not in checked:
                if name.lower() in _RESERVED_HEADERS:
                    raise ValueError(f"HTTP header {name!r} is set by HttpPool; do not pass it")
                if not _TOKEN.fullmatch(name):
                    raise ValueError(f"invalid HTTP header name {name!r}")
                checked.add(name)
            if "\r" in value or "\n" in value or "\0" in value:
                raise ValueError(f"HTTP header {name!r} has a line break or NUL in its value")
            parts += (name, ": ", value, "\r\n")
        parts.append("\r\n")
        try:
            head = "".join(parts).encode("latin-1")
        except UnicodeEncodeError as exc:
            raise ValueError(f"HTTP headers must be latin-1 text: {exc}") from exc
        return head + body

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
        self, loop: asyncio.AbstractEventLoop, request: bytes, generation: int
    ) -> HttpResponse:
        conn = self._pop_idle(loop)
        if conn is not None:
            try:
                return await self._exchange(conn, request, generation)
            except _ClosedBeforeResponse:
                pass  # the server closed it while idle: retry once on a fresh connection
        conn = await self._connect(loop)
        return await self._exchange(conn, request, generation)

    async def _exchange(self, conn: _Connection, request: bytes, generation: int) -> HttpResponse:
        waiter = conn.send(request)
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

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        conn = _Connection(loop, self._label, self._read_timeout)
        host, port, ctx, sni = self._host, self._port, None, None
        try:
            if self._tls:
                ctx = self._ssl_context = self._ssl_context or ssl.create_default_context()
                sni = host
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(lambda: conn, host, port, ssl=ctx, server_hostname=sni)
        except (OSError, UnicodeError) as exc:  # TimeoutError, SSLError, gaierror; bad IDNA
            reason = _describe(exc) if str(exc) else f"timed out after {self._connect_timeout:g} s"
            raise HttpConnectError(f"cannot connect to {self._label}: {reason}") from exc
        return conn


def _parse_url(url: str) -> tuple[str, str, int, str, str]:
    """Scheme, host, port, request target and ``Host`` header of an endpoint URL. The
    ``Host`` value is what botocore's SigV4 signs (``botocore.auth._host_from_url``): the
    lower-cased host, IPv6 in brackets, with the port only if it is not the default."""
    if _UNSAFE_URL.search(url):
        raise ValueError(f"URL {url!r} has whitespace, control or non-ASCII characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"URL {url!r}: the scheme must be http or https")
    host = parts.hostname
    if not host:
        raise ValueError(f"URL {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"URL {url!r}: credentials in the URL are not supported")
    try:
        explicit_port = parts.port
        if explicit_port == 0:
            raise ValueError("port 0")
    except ValueError as exc:
        raise ValueError(f"URL {url!r} has an invalid port: {exc}") from exc
    default = _DEFAULT_PORTS[scheme]
    port = explicit_port or default  # port 0 was rejected above
    host_header = f"[{host}]" if ":" in host else host
    if port != default:
        host_header = f"{host_header}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, target, host_header
