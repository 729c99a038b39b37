"""How a webhook request reaches the receiver: a fast keep-alive pool, or aiohttp via a proxy.

Direct connections go through :class:`~shardline.streams.http.HttpPool` (HTTP/1.1
keep-alive, happy eyeballs, TCP keepalive; a fraction of aiohttp's CPU per request). When
the standard environment (``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``) puts the URL
behind a proxy, requests go through aiohttp's client with ``trust_env``. Both answer with
the status and the headers; every network failure or timeout is a :class:`NetworkError`.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = [
    "NetworkError",
    "Transport",
    "make_transport",
    "proxy_for",
    "tls_context",
]

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
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
    if context is None:
        context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy the standard environment sets for ``url`` (``None``: connect directly)."""
    proxies = urllib.request.getproxies() if environ is None else _proxies_of(environ)
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme.lower())
    if not proxy:
        return None
    host = parts.hostname or ""
    if environ is None:
        bypass = bool(urllib.request.proxy_bypass(host))
    else:
        bypass = _bypassed(host, environ)
    return None if bypass else proxy


def _proxies_of(environ: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("http", "https"):
        value = environ.get(f"{name}_proxy") or environ.get(f"{name.upper()}_PROXY")
        if value:
            found[name] = value
    return found


def _bypassed(host: str, environ: Mapping[str, str]) -> bool:
    entries = (environ.get("no_proxy") or environ.get("NO_PROXY") or "").split(",")
    for entry in (e.strip().lower().lstrip(".") for e in entries):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


class PoolTransport:
    """Direct keep-alive connections through :class:`HttpPool`."""

    def __init__(
        self, url: str, tls: ssl.SSLContext, *, connections: int, connect_timeout: float
    ) -> None:
        from shardline.streams.http import HttpPool

        self._pool = HttpPool(
            url,
            max_connections=connections,
            connect_timeout=connect_timeout,
            ssl_context=tls,
            max_body=_MAX_ANSWER,
        )

    async def post(
        self, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, Mapping[str, str]]:
        from shardline.streams.http import HttpError

        try:
            answer = await self._pool.post(body, headers, timeout=timeout)
        except HttpError as exc:
            raise NetworkError(str(exc)) from exc
        except OSError as exc:
            raise NetworkError(f"{type(exc).__name__}: {exc}") from exc
        return answer.status, answer.headers

    async def close(self) -> None:
        await self._pool.close()


class AiohttpTransport:
    """Requests through aiohttp's client, proxies taken from the environment."""

    def __init__(
        self, url: str, tls: ssl.SSLContext, *, connections: int, connect_timeout: float
    ) -> None:
        self._url = url
        self._tls = tls
        self._connections = connections
        self._connect_timeout = connect_timeout
        self._session: Any = None

    def _client(self) -> Any:
        import aiohttp

        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections, ssl=self._tls)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=True)
        return self._session

    async def post(
        self, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, Mapping[str, str]]:
        import aiohttp

        limits = aiohttp.ClientTimeout(total=timeout, connect=self._connect_timeout)
        try:
            async with self._client().post(
                self._url, data=body, headers=dict(headers), timeout=limits
            ) as answer:
                await answer.content.read(_MAX_ANSWER)
                return answer.status, {k.lower(): v for k, v in answer.headers.items()}
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise NetworkError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def make_transport(
    url: str, tls: ssl.SSLContext, *, connections: int, connect_timeout: float
) -> Transport:
    """The pool for a direct URL, aiohttp for one the environment sends through a proxy."""
    kind = AiohttpTransport if proxy_for(url) else PoolTransport
    return kind(url, tls, connections=connections, connect_timeout=connect_timeout)
