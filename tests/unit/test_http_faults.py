"""Bad networks: each fault injected by a real loopback socket server (see
test_http_client.py for the server), against HttpPool and AwsJsonClient.

No assertion here is about elapsed time: a deadline shows as which error is raised, on how
many connections, and whether the retry went out on a fresh one.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import ssl
import struct
import zlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import certifi
import pytest
from botocore.credentials import Credentials

from shardline.aws.client import AwsJsonClient
from shardline.aws.deadlines import LEASE_OPERATIONS, attempt_timeout
from shardline.aws.endpoints import ResolvedEndpoint
from shardline.aws.settings import AwsSettings
from shardline.aws.transport.connect import interleave, open_socket
from shardline.aws.transport.http import (
    HttpBodyTooLargeError,
    HttpPool,
    HttpProtocolError,
    HttpTimeoutError,
)
from shardline.aws.transport.http_wire import HttpContentEncodingError, decode_content
from shardline.aws.transport.trust import ca_bundle_path
from shardline.errors import ConnectionFailedError
from tests.unit.test_http_client import (
    LOOP_FACTORIES,
    Peer,
    Run,
    Server,
    answering,
    by_connection,
    hang,
    ok,
    response,
)

JSON = b'{"Items": [], "Count": 0}'
T = TypeVar("T")


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def on_loop(request: pytest.FixtureRequest) -> Run[Any]:
    """Run a coroutine in a fresh loop of the parametrized kind (a 10 s hang guard)."""
    factory = LOOP_FACTORIES[request.param]

    def run_one(coro: Coroutine[Any, Any, T]) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(10):
                return await coro

        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(bounded())

    return run_one


def client(url: str, **settings: Any) -> AwsJsonClient:
    async def no_sleep(delay: float) -> None:
        await asyncio.sleep(0)

    return AwsJsonClient(
        "dynamodb",
        ResolvedEndpoint(url=url, region="us-east-1"),
        Credentials("AKID", "SECRET"),
        AwsSettings(**settings),
        sleep=no_sleep,
        rng=lambda: 0.0,
    )


async def stall_mid_body(peer: Peer) -> None:
    await peer.read_request()
    peer.writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    await peer.wait_client_close()


async def rst_after_headers(peer: Peer) -> None:
    await peer.read_request()
    peer.writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    await peer.writer.drain()
    sock = peer.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.writer.transport.abort()  # with SO_LINGER 0: an RST, not a FIN


async def slow_drip(peer: Peer) -> None:
    await peer.read_request()
    peer.writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while True:  # a byte now and then, forever: never a gap long enough for an idle timer
        peer.writer.write(b"x")
        await peer.writer.drain()
        await asyncio.sleep(0.01)


# --- per-request and per-operation deadlines ------------------------------------------------


def test_stall_mid_body_times_out_and_frees_the_connection(on_loop: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(stall_mid_body) as server:
            pool = HttpPool(server.url)
            with pytest.raises(HttpTimeoutError, match=r"within 0\.1 s"):
                await pool.post(b"", {}, timeout=0.1)
            assert not pool._idle
            await pool.close()

    on_loop(scenario())


def test_slow_drip_is_bounded_by_the_whole_request_limit(on_loop: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(slow_drip) as server:
            pool = HttpPool(server.url, read_timeout=0.2)
            with pytest.raises(HttpTimeoutError, match=r"within 0\.2 s"):
                await pool.post(b"", {})
            await pool.close()

    on_loop(scenario())


def test_fresh_skips_idle_connections(on_loop: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(answering(ok)) as server:
            pool = HttpPool(server.url)
            await pool.post(b"", {})
            await pool.post(b"", {}, fresh=True)
            assert server.connections == 2
            await pool.post(b"", {})
            assert server.connections == 2  # both parked; the newest is reused
            await pool.close()

    on_loop(scenario())


def test_attempt_timeout_leaves_room_for_a_retry() -> None:
    assert attempt_timeout(30.0, None, None) == 30.0
    assert attempt_timeout(30.0, 2.5, 2.5) == 1.25
    assert attempt_timeout(30.0, 0.4, 2.5) == 0.4
    assert attempt_timeout(1.0, 9.0, 10.0) == 1.0
    assert attempt_timeout(1.0, -0.1, 10.0) == 0.0


def test_lease_deadlines_come_from_the_failover_time() -> None:
    settings = AwsSettings(call_deadlines=(("Scan", 7.0), ("UpdateItem", 99.0)))
    leased = settings.with_lease_deadlines(10.0)
    assert leased.deadline_for("Scan") == 7.0
    for operation in LEASE_OPERATIONS:
        assert leased.deadline_for(operation) == 2.5  # well inside failover / 3
    assert leased.deadline_for("GetRecords") is None


async def test_a_renewal_stuck_on_a_dead_connection_is_retried_on_a_fresh_one() -> None:
    """The first connection answers once, then goes silent (a NAT dropped it): the
    UpdateItem on it times out within the deadline and succeeds on a new connection."""

    async def answer_once_then_stall(peer: Peer) -> None:
        await peer.read_request()
        peer.writer.write(response(JSON))
        await stall_mid_body(peer)

    handler = by_connection(answer_once_then_stall, answering(lambda _: response(JSON)))
    async with Server(handler) as server:
        deadlines = AwsSettings().with_lease_deadlines(8.0).call_deadlines
        renewals = client(server.url, max_attempts=8, call_deadlines=deadlines)
        assert await renewals.call("GetItem", {}) == {"Items": [], "Count": 0}
        assert await renewals.call("UpdateItem", {}) == {"Items": [], "Count": 0}
        assert server.connections == 2
        await renewals.close()


async def test_a_deadline_ends_the_call_even_with_attempts_left() -> None:
    async with Server(hang) as server:
        renewals = client(server.url, max_attempts=8, call_deadlines=(("UpdateItem", 0.4),))
        with pytest.raises(ConnectionFailedError, match="no complete response"):
            await renewals.call("UpdateItem", {})
        assert server.connections == 2  # two attempts of half the deadline, each fresh
        await renewals.close()


# --- dead and truncated connections -----------------------------------------------------------


def test_rst_after_headers_is_a_protocol_error(on_loop: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(rst_after_headers) as server:
            pool = HttpPool(server.url)
            with pytest.raises(HttpProtocolError, match="closed mid-response"):
                await pool.post(b"", {})
            await pool.close()

    on_loop(scenario())


async def test_rst_after_headers_is_retried_by_the_client() -> None:
    handler = by_connection(rst_after_headers, answering(lambda _: response(JSON)))
    async with Server(handler) as server:
        aws = client(server.url, max_attempts=3)
        assert await aws.call("Scan", {}) == {"Items": [], "Count": 0}
        assert server.connections == 2
        await aws.close()


def _close_without_close_notify(peer: Peer) -> None:
    """Close the TCP connection under the TLS layer: a FIN, no close_notify."""
    sock = peer.writer.get_extra_info("socket")
    sock.shutdown(socket.SHUT_RDWR)
    peer.writer.transport.abort()


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", "neither Content-Length nor chunked"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "closed mid-response"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n", "closed mid-response"),
    ],
    ids=["until-close", "content-length", "chunked"],
)
async def test_tls_closed_without_close_notify_is_a_truncation(
    tls: tuple[ssl.SSLContext, Path], head: bytes, message: str
) -> None:
    async def truncate(peer: Peer) -> None:
        await peer.read_request()
        peer.writer.write(head + b'{"Items": [')
        await peer.writer.drain()
        _close_without_close_notify(peer)

    async with Server(truncate, tls=tls[0]) as server:
        pool = HttpPool(server.url, ssl_context=ssl.create_default_context(cafile=str(tls[1])))
        with pytest.raises(HttpProtocolError, match=message):
            await pool.post(b"", {})
        await pool.close()


def test_body_shorter_than_content_length_is_a_protocol_error(on_loop: Run[None]) -> None:
    async def short(peer: Peer) -> None:
        await peer.read_request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await peer.writer.drain()
        peer.writer.close()

    async def scenario() -> None:
        async with Server(short) as server:
            pool = HttpPool(server.url)
            with pytest.raises(HttpProtocolError, match="closed mid-response"):
                await pool.post(b"", {})
            await pool.close()

    on_loop(scenario())


# --- size caps ---------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked", "until-close"])
def test_oversized_body_is_refused(on_loop: Run[None], framing: str) -> None:
    body = b"x" * 5000
    raw = {
        "content-length": response(body),
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"3e8\r\n" + body[:1000] + b"\r\n" for _ in range(5))
        + b"0\r\n\r\n",
        "until-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body,
    }[framing]

    async def scenario() -> None:
        async with Server(answering(lambda _: raw)) as server:
            pool = HttpPool(server.url, max_body=4096)
            with pytest.raises(HttpBodyTooLargeError, match="larger than the 4096-byte cap"):
                await pool.post(b"", {})
            await pool.close()

    on_loop(scenario())


async def test_oversized_answer_is_one_clear_error_not_retried() -> None:
    async with Server(answering(lambda _: response(b"x" * 5000))) as server:
        aws = client(server.url, max_body=4096)
        with pytest.raises(ConnectionFailedError, match="4096-byte cap") as caught:
            await aws.call("Scan", {})
        assert not caught.value.retriable
        assert server.connections == 1
        await aws.close()


# --- content codings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some send it
    ],
    ids=["gzip", "x-gzip", "deflate", "raw-deflate"],
)
async def test_compressed_answers_are_decoded(coding: str, encode: Any) -> None:
    payload = encode(JSON)
    crc = zlib.crc32(JSON)  # a middlebox that compresses keeps AWS's checksum
    reply = response(payload, f"Content-Encoding: {coding}", f"x-amz-crc32: {crc}")
    async with Server(answering(lambda _: reply)) as server:
        aws = client(server.url)
        assert await aws.call("Scan", {}) == {"Items": [], "Count": 0}
        await aws.close()


async def test_an_unknown_content_coding_is_refused_clearly() -> None:
    reply = response(b"\x1b\x00", "Content-Encoding: br")
    async with Server(answering(lambda _: reply)) as server:
        aws = client(server.url)
        with pytest.raises(ConnectionFailedError, match="'br'-encoded") as caught:
            await aws.call("Scan", {})
        assert not caught.value.retriable
        assert server.connections == 1
        await aws.close()


def test_decode_content_caps_the_decoded_size() -> None:
    bomb = gzip.compress(b"\0" * 100_000)
    with pytest.raises(HttpBodyTooLargeError, match="decodes to more than 1000 bytes"):
        decode_content("gzip", bomb, 1000, "h:1")
    with pytest.raises(HttpProtocolError, match="does not decode"):
        decode_content("gzip", bomb[:-10], 10**6, "h:1")
    with pytest.raises(HttpContentEncodingError):
        decode_content("gzip, zstd", bomb, 10**6, "h:1")
    assert decode_content("identity", b"abc", 10, "h:1") == b"abc"
    assert decode_content(None, b"abc", 10, "h:1") == b"abc"


# --- keepalive, happy eyeballs, CA trust -------------------------------------------------------


def test_pooled_connections_have_tcp_keepalive(on_loop: Run[None]) -> None:
    async def scenario() -> None:
        async with Server(answering(ok)) as server:
            pool = HttpPool(server.url)
            await pool.post(b"", {})
            conn = pool._idle[-1]
            assert conn._transport is not None
            sock = conn._transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            if hasattr(socket, "TCP_KEEPIDLE"):
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 15
            await pool.close()

    on_loop(scenario())


def test_interleave_alternates_address_families() -> None:
    v4 = [(socket.AF_INET, 1, 6, "", (f"10.0.0.{i}", 1)) for i in range(3)]
    v6 = [(socket.AF_INET6, 1, 6, "", (f"::{i}", 1, 0, 0)) for i in range(2)]
    ordered = interleave([v6[0], v6[1], *v4])
    assert [info[4][0] for info in ordered] == ["::0", "10.0.0.0", "::1", "10.0.0.1", "10.0.0.2"]
    assert interleave([]) == []


async def test_happy_eyeballs_moves_on_from_an_address_that_does_not_answer() -> None:
    """The first address never completes its handshake (a listener whose backlog is full
    drops SYNs); the second one, tried after the delay, wins."""
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue (never accepted)
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(full.getsockname())
            except BlockingIOError:
                pass
            fillers.append(filler)
        async with Server(answering(ok)) as server:
            loop = asyncio.get_running_loop()
            good = ("127.0.0.1", server.port)
            dead = full.getsockname()

            async def resolve(host: str, port: int, **kwargs: Any) -> list[Any]:
                return [
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", dead),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", good),
                ]

            loop.getaddrinfo = resolve  # type: ignore[assignment, method-assign]
            try:
                sock = await open_socket(loop, "dual.example", server.port, delay=0.05)
            finally:
                del loop.getaddrinfo
            assert sock.getpeername() == good
            sock.close()
    finally:
        for filler in fillers:
            filler.close()
        full.close()


async def test_a_socket_connected_as_the_caller_gives_up_is_closed() -> None:
    """The caller's deadline may cancel open_socket just after an attempt connected, before
    the race returns: that socket, which nobody will get, is closed, not left to the GC."""
    loop = asyncio.get_running_loop()
    real_connect = loop.sock_connect
    connected: list[socket.socket] = []

    async def connect_then_give_up(sock: socket.socket, address: Any) -> None:
        await real_connect(sock, address)
        connected.append(sock)
        opening.cancel()  # the caller's deadline, in the same loop iteration

    with socket.create_server(("127.0.0.1", 0)) as listener:
        loop.sock_connect = connect_then_give_up  # type: ignore[method-assign]
        try:
            opening = asyncio.create_task(open_socket(loop, "127.0.0.1", listener.getsockname()[1]))
            with pytest.raises(asyncio.CancelledError):
                await opening
        finally:
            del loop.sock_connect
    assert len(connected) == 1 and connected[0].fileno() == -1


def test_ca_trust_is_botocores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    assert ca_bundle_path(None) == certifi.where()
    assert ca_bundle_path("/etc/corp.pem") == "/etc/corp.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "r.pem"))
    assert ca_bundle_path(None) == str(tmp_path / "r.pem")
    assert os.path.exists(certifi.where())
