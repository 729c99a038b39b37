"""How a webhook request reaches the receiver: a fast keep-alive pool, or a proxy.

Direct connections go through :class:`~shardline.aws.transport.http.HttpPool` (HTTP/1.1
keep-alive, happy eyeballs, TCP keepalive; a fraction of aiohttp's CPU per request). When
the standard environment (``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``, lower case too)
puts the URL behind a proxy -- decided as botocore decides for the AWS calls
(:func:`shardline.aws.transport.proxy.proxy_for`) -- requests go through
:class:`~shardline.aws.transport.proxy.ProxyTransport` (aiohttp; a CONNECT tunnel for https).
Both answer with the status and the headers; every network failure or timeout is a
:class:`NetworkError`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["NetworkError", "Transport", "make_transport", "proxied", "tls_context"]

_MAX_ANSWER = 1024 * 1024  # a webhook's answer body is not read beyond this


class NetworkError(Exception):
    """The request may not have arrived: connect/TLS failure, reset, timeout, bad answer."""


class Transport(Protocol):
    """Sends one POST and returns ``(status, headers with lower-case names)``."""

    async def post(
        self, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, Mapping[str, str]]:
        """POST ``body``; raise :class:`NetworkError` when no answer came."""

    async def close(self) -> None:
        """Close the connections."""


def tls_context(ca_bundle: str | None, verify: bool) -> ssl.SSLContext:
    """Verification on (system trust store, or ``ca_bundle``) unless ``verify`` is False."""
    context = ssl.create_default_context(cafile=ca_bundle or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def proxied(url: str) -> bool:
    """Whether the environment sends ``url`` through a proxy."""
    from shardline.aws.transport.proxy import proxy_for

    return proxy_for(url) is not None


class _ClientTransport:
    """:class:`Transport` over a client with HttpPool's contract (the pool or the proxy)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def post(
        self, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, Mapping[str, str]]:
        from shardline.aws.transport.http import HttpError

        try:
            answer = await self._client.post(body, headers, timeout=timeout)
        except HttpError as exc:
            raise NetworkError(str(exc)) from exc
        except OSError as exc:
            raise NetworkError(f"{type(exc).__name__}: {exc}") from exc
        return answer.status, answer.headers

    async def close(self) -> None:
        await self._client.close()


def make_transport(
    url: str, tls: ssl.SSLContext, *, connections: int, connect_timeout: float
) -> Transport:
    """The pool for a direct URL, the proxy transport for one the environment proxies.

    Raises ``ValueError`` for a URL the HTTP client cannot use.
    """
    from shardline.aws.transport.http import HttpPool
    from shardline.aws.transport.proxy import ProxyTransport, proxy_for

    route = proxy_for(url)
    if route is None:
        client: Any = HttpPool(
            url,
            max_connections=connections,
            connect_timeout=connect_timeout,
            ssl_context=tls,
            max_body=_MAX_ANSWER,
        )
    else:
        client = ProxyTransport(
            url,
            route,
            max_connections=connections,
            connect_timeout=connect_timeout,
            ssl_context=tls,
            max_body=_MAX_ANSWER,
        )
    return _ClientTransport(client)
