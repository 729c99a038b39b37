"""Opening the TCP connections of :class:`~shardline.aws.transport.http.HttpPool`.

- Happy eyeballs (RFC 8305) on every event loop: the host's addresses are interleaved by
  family and tried one after another, each started ``delay`` seconds after the previous
  one unless that one failed sooner; the first to connect wins and the others are closed.
  (uvloop's ``create_connection`` has no ``happy_eyeballs_delay``, so this is done here
  with ``getaddrinfo``, ``sock_connect`` and ``asyncio.staggered``.)
- TCP keepalive on every connection: a pooled connection whose peer vanished without a
  FIN/RST (NAT timeout, dead host) is found dead by the kernel within about
  ``idle + interval * count`` seconds of silence instead of at the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from asyncio.staggered import staggered_race
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

__all__ = ["KEEPALIVE", "enable_keepalive", "interleave", "open_socket"]

AddrInfo = tuple[int, int, int, str, Any]

KEEPALIVE: Final = (15, 5, 3)
"""TCP keepalive: first probe after 15 s idle, then every 5 s, dead after 3 unanswered."""


def interleave(infos: Sequence[AddrInfo]) -> list[AddrInfo]:
    """Addresses alternating by family, first family first (RFC 8305 section 4)."""
    families: dict[int, list[AddrInfo]] = {}
    for info in infos:
        families.setdefault(info[0], []).append(info)
    queues = list(families.values())
    ordered: list[AddrInfo] = []
    for index in range(max((len(q) for q in queues), default=0)):
        ordered.extend(q[index] for q in queues if index < len(q))
    return ordered


def enable_keepalive(sock: socket.socket, keepalive: tuple[int, int, int] = KEEPALIVE) -> None:
    """Turn on TCP keepalive with ``(idle, interval, count)`` where the OS allows each."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle, interval, count = keepalive
    for name, value in (
        ("TCP_KEEPIDLE", idle),
        ("TCP_KEEPINTVL", interval),
        ("TCP_KEEPCNT", count),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


async def open_socket(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    *,
    delay: float = 0.25,
    keepalive: tuple[int, int, int] | None = KEEPALIVE,
) -> socket.socket:
    """A connected non-blocking TCP socket to ``host``:``port`` (happy eyeballs).

    Raises ``OSError`` (``socket.gaierror`` for a name that does not resolve; for several
    failed addresses, one that lists each) -- the caller bounds the time.
    """
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned no addresses")
    errors: list[OSError] = []
    connected: list[socket.socket] = []
    attempts = [_attempt(loop, info, errors, connected, keepalive) for info in interleave(infos)]
    sock: socket.socket | None = None
    try:
        sock, _, _ = await staggered_race(attempts, delay)
    finally:
        for other in connected:  # connected, but the caller gave up before the race returned
            if other is not sock:
                other.close()
    if sock is None:
        if len(errors) == 1:
            raise errors[0]
        raise OSError("; ".join(str(error) for error in errors) or "no address connected")
    return sock


def _attempt(
    loop: asyncio.AbstractEventLoop,
    info: AddrInfo,
    errors: list[OSError],
    connected: list[socket.socket],
    keepalive: tuple[int, int, int] | None,
) -> Callable[[], Awaitable[socket.socket]]:
    family, kind, proto, _, address = info

    async def connect() -> socket.socket:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            if keepalive is not None:
                enable_keepalive(sock, keepalive)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            raise
        except BaseException:  # cancelled: another address won, or the caller gave up
            sock.close()
            raise
        connected.append(sock)
        return sock

    return connect
