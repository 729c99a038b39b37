"""HttpPool against raw-bytes loopback servers, under asyncio's loop and (if installed) uvloop."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import botocore.auth
import pytest

from shardline.aws.transport.http import (
    HttpConnectError,
    HttpPool,
    HttpProtocolError,
    HttpResponse,
    HttpTimeoutError,
    _Connection,
    _parse_url,
)

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop
}
try:
    import uvloop

    LOOP_FACTORIES["uvloop"] = uvloop.new_event_loop
except ImportError:  # pragma: no cover - uvloop is optional
    pass


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def run(request: pytest.FixtureRequest) -> Run[Any]:
    """Run a coroutine to completion in a fresh loop of the parametrized kind (5 s cap)."""
    factory = LOOP_FACTORIES[request.param]

    def run_one(coro: Coroutine[Any, Any, T]) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(5):
                return await coro

        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(bounded())

    return run_one


# --- a raw-bytes loopback server -----------------------------------------------------------


class Peer:
    """The server's side of one accepted connection."""

    def __init__(self, server: Server, index: int, reader: asyncio.StreamReader, writer: Any):
        self.server = server
        self.index = index
        self.reader = reader
        self.writer: asyncio.StreamWriter = writer

    async def read_request(self) -> bytes | None:
        """One whole request (head and Content-Length body), or None at EOF."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
            body = await self.reader.readexactly(int(match[1])) if match else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        self.server.requests.append(head + body)
        return head + body

    async def wait_client_close(self) -> None:
        """Read until the client closes (or resets) the connection."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.server.client_closes += 1


Handler = Callable[[Peer], Awaitable[None]]


class Server:
    """A loopback server whose handler writes raw bytes; it counts connections."""

    def __init__(
        self, handler: Handler, *, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.handler = handler
        self.tls = tls
        self.host = host
        self.port = 0
        self.connections = 0
        self.active = 0
        self.peak = 0
        self.client_closes = 0
        self.requests: list[bytes] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()  # ends every handler
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        index, self.connections = self.connections, self.connections + 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await self.handler(Peer(self, index, reader, writer))
        except ConnectionError:
            pass
        finally:
            self.active -= 1
            writer.transport.abort()
            self._tasks.discard(task)


def response(body: bytes = b"ok", *headers: str, status: str = "200 OK") -> bytes:
    """A Content-Length framed HTTP/1.1 response."""
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


def answering(reply: Callable[[bytes], bytes]) -> Handler:
    """A handler answering every request on the connection with ``reply(request)``."""

    async def handle(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            peer.writer.write(reply(request))
        peer.server.client_closes += 1

    return handle


def ok(_: bytes) -> bytes:
    return response(b"ok")


def by_connection(*handlers: Handler) -> Handler:
    """Connection number i is served by handlers[i] (the last one serves the rest)."""

    async def handle(peer: Peer) -> None:
        await handlers[min(peer.index, len(handlers) - 1)](peer)

    return handle


async def hang(peer: Peer) -> None:
    """Read the request, never answer; wait for the client to close."""
    await peer.read_request()
    await peer.wait_client_close()


async def until(condition: Callable[[], bool], timeout: float = 1.0) -> None:
    """Poll ``condition`` (server-side counters) until it holds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling plain counters is simplest here
            await asyncio.sleep(0.002)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


HEADERS = {"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/json"}

# --- requests --------------------------------------------------------------------------------


def test_post_returns_status_headers_and_body(run: Run[None]) -> None:
    def echo(request: bytes) -> bytes:
        target = re.search(rb"X-Amz-Target: ([^\r]+)", request)
        assert target is not None
        body = request.partition(b"\r\n\r\n")[2]
        return response(body, f"X-Echo: {target[1].decode()}", "Set-Thing: a", "SET-THING: b")

    async def scenario() -> None:
        async with Server(answering(echo)) as server:
            pool = HttpPool(server.url)
            reply = await pool.post(b'{"a": 1}', HEADERS)
            await pool.close()
        assert reply == HttpResponse(
            200,
            {
                "content-length": "8",
                "x-echo": "DynamoDB_20120810.ListTables",
                "set-thing": "a, b",
            },
            b'{"a": 1}',
        )

    run(scenario())


def test_request_bytes_are_exact(run: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(answering(ok)) as server:
            pool = HttpPool(f"http://127.0.0.1:{server.port}/some/path?x=1&y=%20")
            await pool.post(b"abc", {"X-A": "b", "Content-Type": "application/x-amz-json-1.0"})
            await pool.close()
        assert server.requests == [
            b"POST /some/path?x=1&y=%20 HTTP/1.1\r\n"
            + f"Host: 127.0.0.1:{server.port}\r\n".encode()
            + b"Content-Length: 3\r\nX-A: b\r\nContent-Type: application/x-amz-json-1.0\r\n"
            + b"\r\nabc"
        ]

    run(scenario())


def test_request_on_default_port_has_no_port_in_host() -> None:
    pool = HttpPool("https://Streams.DynamoDB.eu-west-1.amazonaws.com")
    assert pool._encode(b"{}", {"X-Amz-Target": "t"}) == (
        b"POST / HTTP/1.1\r\nHost: streams.dynamodb.eu-west-1.amazonaws.com\r\n"
        b"Content-Length: 2\r\nX-Amz-Target: t\r\n\r\n{}"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:4567/",
        "http://127.0.0.1:80/",
        "http://localhost:443/",
        "https://dynamodb.us-east-1.amazonaws.com/",
        "https://dynamodb.us-east-1.amazonaws.com:443",
        "https://DynamoDB.US-EAST-1.amazonaws.com:8443/x",
        "http://[::1]:4567/",
        "https://[::1]/",
        "http://[FE80::1%25eth0]:8000/",
    ],
)
def test_host_header_matches_botocore_sigv4(url: str) -> None:
    assert _parse_url(url)[4] == botocore.auth._host_from_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "scheme"),
        ("example.com", "scheme"),
        ("http://", "no host"),
        ("http:///path", "no host"),
        ("http://example.com:http/", "invalid port"),
        ("http://example.com:99999/", "invalid port"),
        ("http://example.com:0/", "invalid port"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com/a b", "whitespace"),
        ("http://example.com/\u00e9", "non-ASCII"),
    ],
)
def test_invalid_urls_are_rejected(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpPool(url)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Host": "x"}, "set by HttpPool"),
        ({"content-length": "3"}, "set by HttpPool"),
        ({"Transfer-Encoding": "chunked"}, "set by HttpPool"),
        ({"X-A": "b\r\nEvil: 1"}, "line break"),
        ({"Bad Name": "b"}, "invalid HTTP header name"),
        ({"X-A": "\u20ac"}, "latin-1"),
    ],
)
def test_invalid_headers_are_rejected(headers: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpPool("http://127.0.0.1:1/")._encode(b"", headers)


# --- response framing ------------------------------------------------------------------------


def test_content_length_body_arriving_byte_by_byte(run: Run[None]) -> None:
    async def dribble(peer: Peer) -> None:
        await peer.read_request()
        for byte in response(b"0123456789" * 5, "X-A: b"):
            peer.writer.write(bytes([byte]))
            await asyncio.sleep(0)
        await peer.wait_client_close()

    async def scenario() -> None:
        async with Server(dribble) as server:
            pool = HttpPool(server.url)
            reply = await pool.post(b"", {})
            await pool.close()
        assert (reply.status, reply.headers["x-a"], reply.body) == (200, "b", b"0123456789" * 5)

    run(scenario())


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value\r\nhello\r\n1 \r\n,\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\nX-More: m\r\n\r\n"
)
PARSER_CASES = {
    "length": (response(b"hello, world", "X-A: b"), b"hello, world"),
    "chunked": (CHUNKED, b"hello, world"),
    "continue": (b"HTTP/1.1 100 Continue\r\n\r\n" + response(b"body"), b"body"),
    "no-content": (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    "empty": (response(b""), b""),
}


@pytest.mark.parametrize("case", sorted(PARSER_CASES))
def test_parser_handles_every_split(run: Run[None], case: str) -> None:
    raw, body = PARSER_CASES[case]
    splits = [[raw], [raw[i : i + 1] for i in range(len(raw))]]
    splits += [[raw[:i], raw[i:]] for i in range(1, len(raw))]

    async def scenario() -> None:
        for pieces in splits:
            conn = _Connection(asyncio.get_running_loop(), "test:1", tls=False, max_body=1 << 20)
            conn.connection_made(FakeTransport())
            waiter = conn.send(b"request", 5.0)
            for piece in pieces:
                conn.data_received(piece)
            assert waiter.result().body == body, pieces
            assert conn.reusable

    run(scenario())


@pytest.mark.parametrize(
    "raw",
    [
        response(b"ok") + b"junk",
        response(b"ok", "Connection: close"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
    ],
)
def test_connection_not_reusable_after(run: Run[None], raw: bytes) -> None:
    async def scenario() -> None:
        conn = _Connection(asyncio.get_running_loop(), "test:1", tls=False, max_body=1 << 20)
        conn.connection_made(FakeTransport())
        waiter = conn.send(b"request", 5.0)
        conn.data_received(raw)
        assert waiter.result().body == b"ok"
        assert not conn.reusable

    run(scenario())


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


def test_chunked_body_with_extensions_and_trailers(run: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(answering(lambda _: CHUNKED)) as server:
            pool = HttpPool(server.url)
            replies = [await pool.post(b"", {}) for _ in range(2)]
            await pool.close()
        assert [r.body for r in replies] == [b"hello, world"] * 2
        assert server.connections == 1

    run(scenario())


def test_body_read_until_close_and_connection_not_reused(run: Run[None]) -> None:
    async def until_close(peer: Peer) -> None:
        await peer.read_request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nfirst part, ")
        await asyncio.sleep(0.01)
        peer.writer.write(b"second part")
        await peer.writer.drain()

    async def scenario() -> None:
        async with Server(until_close) as server:
            pool = HttpPool(server.url)
            replies = [await pool.post(b"", {}) for _ in range(2)]
            await pool.close()
        assert [r.body for r in replies] == [b"first part, second part"] * 2
        assert server.connections == 2

    run(scenario())


def test_interim_100_continue_is_skipped(run: Run[None]) -> None:
    async def scenario() -> None:
        interim = b"HTTP/1.1 100 Continue\r\nX-I: 1\r\n\r\n"
        async with Server(answering(lambda _: interim + response(b"done"))) as server:
            pool = HttpPool(server.url)
            reply = await pool.post(b"x", {})
            await pool.close()
        assert (reply.status, reply.body, "x-i" in reply.headers) == (200, b"done", False)

    run(scenario())


@pytest.mark.parametrize(("interims", "ok_expected"), [(10, True), (11, False)])
def test_interim_responses_are_capped(run: Run[None], interims: int, ok_expected: bool) -> None:
    async def scenario() -> None:
        interim = b"HTTP/1.1 100 Continue\r\n\r\n" * interims
        async with Server(answering(lambda _: interim + response(b"done"))) as server:
            pool = HttpPool(server.url)
            if ok_expected:
                assert (await pool.post(b"x", {})).body == b"done"
            else:
                with pytest.raises(HttpProtocolError, match="more than 10 interim responses"):
                    await pool.post(b"x", {})
            await pool.close()

    run(scenario())


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTX/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n",
    ],
)
def test_malformed_response_is_a_protocol_error(run: Run[None], raw: bytes) -> None:
    async def scenario() -> None:
        async with Server(answering(lambda _: raw)) as server:
            pool = HttpPool(server.url, max_connections=1)
            for _ in range(2):  # a leaked slot would make the second call hang
                with pytest.raises(HttpProtocolError, match=re.escape(f"127.0.0.1:{server.port}")):
                    await pool.post(b"", {})
            await pool.close()
        assert server.connections == 2

    run(scenario())


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_large_body_arrives_intact(run: Run[None], framing: str) -> None:
    body = random.Random(7).randbytes(5 * 1024 * 1024)

    def large(_: bytes) -> bytes:
        if framing == "length":
            return response(body)
        chunks = [body[i : i + 300_000] for i in range(0, len(body), 300_000)]
        framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"

    async def scenario() -> None:
        async with Server(answering(large)) as server:
            pool = HttpPool(server.url)
            reply = await pool.post(b"", {})
            await pool.close()
        assert reply.body == body

    run(scenario())


# --- keep-alive and retries -------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(run: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(answering(ok)) as server:
            pool = HttpPool(server.url)
            for _ in range(5):
                assert (await pool.post(b"{}", HEADERS)).body == b"ok"
            await pool.close()
        assert (server.connections, len(server.requests)) == (1, 5)

    run(scenario())


@pytest.mark.parametrize(
    "raw",
    [
        response(b"ok", "Connection: close"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ],
)
def test_connection_close_is_honoured(run: Run[None], raw: bytes) -> None:
    async def answer_then_wait(peer: Peer) -> None:
        await peer.read_request()
        peer.writer.write(raw)
        await peer.wait_client_close()  # the client, not the server, must close it

    async def scenario() -> None:
        async with Server(answer_then_wait) as server:
            pool = HttpPool(server.url)
            assert (await pool.post(b"", {})).body == b"ok"
            await until(lambda: server.client_closes == 1)
            assert (await pool.post(b"", {})).body == b"ok"
            await pool.close()
        assert server.connections == 2

    run(scenario())


def test_http10_keep_alive_is_reused(run: Run[None]) -> None:
    raw = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok"

    async def scenario() -> None:
        async with Server(answering(lambda _: raw)) as server:
            pool = HttpPool(server.url)
            for _ in range(3):
                await pool.post(b"", {})
            await pool.close()
        assert server.connections == 1

    run(scenario())


def test_connection_idle_too_long_is_not_reused(run: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(answering(ok)) as server:
            pool = HttpPool(server.url, idle_timeout=0.02)
            await pool.post(b"", {})
            await asyncio.sleep(0.04)
            await pool.post(b"", {})
            await until(lambda: server.client_closes == 1)
            await pool.close()
        assert server.connections == 2

    run(scenario())


def test_idle_connection_closed_by_server_is_skipped(run: Run[None]) -> None:
    async def answer_once(peer: Peer) -> None:
        await peer.read_request()
        peer.writer.write(response(b"ok"))
        await peer.writer.drain()

    async def scenario() -> None:
        async with Server(answer_once) as server:
            pool = HttpPool(server.url)
            await pool.post(b"", {})
            await until(lambda: server.active == 0)
            await asyncio.sleep(0.01)  # let the client see the close
            assert (await pool.post(b"", {})).body == b"ok"
            await pool.close()
        assert server.connections == 2

    run(scenario())


def test_stale_connection_is_retried_once(run: Run[None]) -> None:
    async def answer_then_drop(peer: Peer) -> None:
        await peer.read_request()
        peer.writer.write(response(b"first"))
        await peer.read_request()  # the reused connection's request: dropped unanswered

    async def scenario() -> None:
        async with Server(by_connection(answer_then_drop, answering(ok))) as server:
            pool = HttpPool(server.url)
            assert (await pool.post(b"", {})).body == b"first"
            assert (await pool.post(b"", {})).body == b"ok"
            await pool.close()
        assert (server.connections, len(server.requests)) == (2, 3)

    run(scenario())


def test_no_retry_after_part_of_the_response(run: Run[None]) -> None:
    async def answer_then_break(peer: Peer) -> None:
        await peer.read_request()
        peer.writer.write(response(b"first"))
        await peer.read_request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await peer.writer.drain()

    async def scenario() -> None:
        async with Server(answer_then_break) as server:
            pool = HttpPool(server.url)
            await pool.post(b"", {})
            with pytest.raises(HttpProtocolError, match="mid-response"):
                await pool.post(b"", {})
            await asyncio.sleep(0.01)
            await pool.close()
        assert server.connections == 1

    run(scenario())


def test_no_retry_on_a_fresh_connection(run: Run[None]) -> None:
    async def drop(peer: Peer) -> None:
        await peer.read_request()

    async def scenario() -> None:
        async with Server(drop) as server:
            pool = HttpPool(server.url)
            with pytest.raises(HttpProtocolError, match="before any response byte"):
                await pool.post(b"", {})
            await asyncio.sleep(0.01)
            await pool.close()
        assert server.connections == 1

    run(scenario())


# --- timeouts, limits, cancellation, close ----------------------------------------------------


def test_read_timeout_closes_the_connection_and_frees_the_slot(run: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(by_connection(hang, answering(ok))) as server:
            pool = HttpPool(server.url, max_connections=1, read_timeout=0.05)
            with pytest.raises(
                HttpTimeoutError, match=re.escape(f"127.0.0.1:{server.port} within 0.05 s")
            ):
                await pool.post(b"", {})
            await until(lambda: server.client_closes == 1)
            assert (await pool.post(b"", {})).body == b"ok"
            await pool.close()

    run(scenario())


def test_connect_refused_is_a_connect_error(run: Run[None]) -> None:
    async def scenario() -> None:
        port = free_port()
        pool = HttpPool(f"http://127.0.0.1:{port}/")
        with pytest.raises(
            HttpConnectError, match=re.escape(f"127.0.0.1:{port}: ConnectionRefusedError")
        ):
            await pool.post(b"", {})
        await pool.close()

    run(scenario())


def test_unresolvable_host_is_a_connect_error(run: Run[None]) -> None:
    async def scenario() -> None:
        pool = HttpPool("http://no-such-host.invalid:4567/", connect_timeout=0.5)
        with pytest.raises(HttpConnectError, match=re.escape("no-such-host.invalid:4567")):
            await pool.post(b"", {})

    run(scenario())


def test_tls_handshake_timeout_is_a_connect_error(run: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(Peer.wait_client_close) as server:  # accepts TCP, never speaks TLS
            pool = HttpPool(f"https://127.0.0.1:{server.port}/", connect_timeout=0.05)
            with pytest.raises(HttpConnectError, match=re.escape("timed out after 0.05 s")):
                await pool.post(b"", {})

    run(scenario())


def test_max_connections_is_respected(run: Run[None]) -> None:
    async def slow(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await asyncio.sleep(0.01)
            peer.writer.write(response(b"ok"))

    async def scenario() -> None:
        async with Server(slow) as server:
            pool = HttpPool(server.url, max_connections=3)
            replies = await asyncio.gather(*(pool.post(b"", {}) for _ in range(10)))
            await pool.close()
        assert [r.body for r in replies] == [b"ok"] * 10
        assert server.peak <= 3
        assert server.connections <= 3

    run(scenario())


def test_cancellation_closes_the_connection_and_frees_the_slot(run: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(by_connection(hang, answering(ok))) as server:
            pool = HttpPool(server.url, max_connections=1)
            in_flight = asyncio.create_task(pool.post(b"", {}))
            waiting = asyncio.create_task(pool.post(b"", {}))  # waits for the only slot
            await until(lambda: len(server.requests) == 1)
            waiting.cancel()
            in_flight.cancel()
            for task in (waiting, in_flight):
                with pytest.raises(asyncio.CancelledError):
                    await task
            await until(lambda: server.client_closes == 1)
            async with asyncio.timeout(1):
                assert (await pool.post(b"", {})).status == 200
            await pool.close()
        assert len(server.requests) == 2  # the cancelled waiter never sent anything

    run(scenario())


def test_close_fails_requests_in_flight_and_pool_is_usable_after(run: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(by_connection(answering(ok), hang, answering(ok))) as server:
            pool = HttpPool(server.url)
            await pool.post(b"", {})
            await pool.close()
            await until(lambda: server.client_closes == 1)
            in_flight = asyncio.create_task(pool.post(b"", {}))
            await until(lambda: len(server.requests) == 2)
            await pool.close()
            with pytest.raises(HttpProtocolError, match=re.escape("closed by HttpPool.close()")):
                await in_flight
            assert (await pool.post(b"", {})).body == b"ok"
            await pool.close()
        assert server.connections == 3

    run(scenario())


def test_a_connection_opened_across_close_is_not_kept(run: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(answering(ok)) as server:
            pool = HttpPool(server.url)
            gate = asyncio.Event()
            connect = pool._connect

            async def slow_connect(loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
                await gate.wait()
                return await connect(loop, deadline)

            pool._connect = slow_connect  # type: ignore[method-assign]
            in_flight = asyncio.create_task(pool.post(b"", {}))
            await asyncio.sleep(0)
            await pool.close()  # the request is still connecting
            gate.set()
            assert (await in_flight).body == b"ok"
            assert not pool._idle  # closed after its answer instead of parked
            await until(lambda: server.client_closes == 1)

    run(scenario())


# --- TLS and IPv6 ------------------------------------------------------------------------------


def test_https_with_a_trusted_certificate(run: Run[None], tls: tuple[ssl.SSLContext, Path]) -> None:
    server_context, ca_file = tls

    async def scenario() -> None:
        async with Server(answering(ok), tls=server_context) as server:
            pool = HttpPool(server.url, ssl_context=ssl.create_default_context(cafile=ca_file))
            replies = [await pool.post(b"{}", HEADERS) for _ in range(3)]
            await pool.close()
        assert [r.body for r in replies] == [b"ok"] * 3
        assert server.connections == 1

    run(scenario())


def test_https_with_an_untrusted_certificate_fails(
    run: Run[None], tls: tuple[ssl.SSLContext, Path]
) -> None:
    async def scenario() -> None:
        async with Server(answering(ok), tls=tls[0]) as server:
            pool = HttpPool(server.url)  # the system's CAs do not trust the test CA
            with pytest.raises(HttpConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await pool.post(b"", {})

    run(scenario())


def test_ipv6_literal_host(run: Run[None]) -> None:
    async def scenario() -> None:
        try:
            server = await Server(answering(ok), host="::1").__aenter__()
        except OSError:
            pytest.skip("no IPv6 loopback")
        try:
            pool = HttpPool(server.url)
            assert (await pool.post(b"", {})).body == b"ok"
            await pool.close()
        finally:
            await server.__aexit__(None, None, None)
        assert f"Host: [::1]:{server.port}\r\n".encode() in server.requests[0]

    run(scenario())
