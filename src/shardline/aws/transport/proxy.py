"""HTTP proxies for the AWS calls, decided exactly as botocore decides, sent by aiohttp.

:func:`proxy_for` asks botocore itself: ``botocore.utils.get_environ_proxies`` (the
standard library's ``getproxies``/``proxy_bypass``: ``HTTPS_PROXY``, ``HTTP_PROXY``,
``NO_PROXY`` and their lower-case forms, lower case winning; ``NO_PROXY`` entries match
the host or a domain suffix, ``host:port`` entries only that port, ``*`` everything) and
``botocore.httpsession.ProxyConfiguration`` (the proxy for the endpoint's scheme, ``http://``
added when the value has no scheme, ``Proxy-Authorization: Basic`` from the user and
password in its URL). It reads the environment when a client is created, never at import.

:class:`ProxyTransport` sends the requests of one endpoint through that proxy with
aiohttp's client (a CONNECT tunnel for https endpoints, absolute-URI requests for http),
answering like :class:`~shardline.aws.transport.http.HttpPool`. Direct connections keep the fast
``HttpPool``; only proxied endpoints pay aiohttp's CPU per request. Proxy credentials
never appear in an error: the proxy is named by :attr:`ProxyRoute.display`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import botocore.httpsession
import botocore.utils

from shardline.aws.transport.http import DEFAULT_MAX_BODY, HttpResponse
from shardline.aws.transport.http_wire import (
    HttpBodyTooLargeError,
    HttpConnectError,
    HttpProtocolError,
    HttpProxyRefusedError,
    HttpTimeoutError,
    describe,
)
from shardline.redact import redact_url

__all__ = ["ProxyRoute", "ProxyTransport", "Transport", "proxy_for"]

_AWS_REQUEST_ID_HEADERS = ("x-amzn-RequestId", "x-amz-request-id", "x-amz-id-2")


class Transport(Protocol):
    """What :class:`~shardline.aws.client.AwsJsonClient` sends requests through:
    :class:`~shardline.aws.transport.http.HttpPool` (direct) or :class:`ProxyTransport`."""

    async def post(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float | None = None,
        fresh: bool = False,
    ) -> HttpResponse:
        """POST and read the complete answer; raises an ``HttpError``."""

    async def close(self) -> None:
        """Close every connection; the transport may be used again."""


@dataclass(frozen=True)
class ProxyRoute:
    """The proxy one endpoint's requests go through."""

    url: str
    """The proxy URL without credentials."""
    display: str
    """The proxy URL for messages: the password masked."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers for the proxy: ``Proxy-Authorization`` when its URL has credentials."""


def proxy_for(endpoint_url: str) -> ProxyRoute | None:
    """The proxy botocore would use for ``endpoint_url`` (from the environment), or None."""
    proxies = botocore.utils.get_environ_proxies(endpoint_url)
    config = botocore.httpsession.ProxyConfiguration(proxies=proxies)
    proxy_url = config.proxy_url_for(endpoint_url)
    if not proxy_url:
        return None
    headers = dict(config.proxy_headers_for(proxy_url))
    return ProxyRoute(
        url=_without_credentials(proxy_url), display=redact_url(proxy_url), headers=headers
    )


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class ProxyTransport:
    """Requests to one endpoint through one proxy, with aiohttp's client.

    Same contract as :class:`~shardline.aws.transport.http.HttpPool`: ``post`` raises
    :class:`HttpConnectError` when the proxy cannot be reached,
    :class:`HttpProxyRefusedError` when it refuses (407, 403, ...), each naming the proxy
    with its password masked; :class:`HttpTimeoutError`, :class:`HttpProtocolError` and
    :class:`HttpBodyTooLargeError` as the pool does. Bodies are not decompressed here.
    """

    def __init__(
        self,
        url: str,
        route: ProxyRoute,
        *,
        max_connections: int = 512,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._url = url
        self._route = route
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._max_body = max_body
        self._session: aiohttp.ClientSession | None = None
        # proxy headers go on the CONNECT for an https endpoint (aiohttp's proxy_headers), on
        # every request for an http one (the request itself goes to the proxy)
        tunnel = urlsplit(url).scheme == "https"
        self._connect_headers = dict(route.headers) if tunnel and route.headers else None
        self._request_extra = {} if tunnel else dict(route.headers)
        target = urlsplit(url)
        self._target = f"{target.hostname}:{target.port or _default_port(target.scheme)}"

    async def post(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float | None = None,
        fresh: bool = False,
    ) -> HttpResponse:
        """POST ``body`` through the proxy (a new connection when ``fresh``)."""
        limit = self._read_timeout if timeout is None else timeout
        if fresh:  # aiohttp has no per-request "new connection": a one-off session
            async with self._new_session(force_close=True) as session:
                return await self._post(session, body, headers, limit)
        return await self._post(self._ensure_session(), body, headers, limit)

    async def close(self) -> None:
        """Close the session and its connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._new_session(force_close=False)
        return self._session

    def _new_session(self, *, force_close: bool) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max, force_close=force_close)
        return aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("Accept",)
        )

    async def _post(
        self, session: aiohttp.ClientSession, body: bytes, headers: Mapping[str, str], limit: float
    ) -> HttpResponse:
        timeout = aiohttp.ClientTimeout(total=limit, connect=min(self._connect_timeout, limit))
        try:
            async with session.post(
                self._url,
                data=body,
                headers=self._request_headers(headers),
                proxy=self._route.url,
                proxy_headers=self._connect_headers,
                ssl=self._ssl,
                timeout=timeout,
                allow_redirects=False,
            ) as answer:
                self._check_proxy_answer(answer.status, answer.reason, answer.headers)
                payload = await _read_capped(answer, self._max_body, self._target)
                answer_headers = _lower_headers(answer.headers)
                return HttpResponse(answer.status, answer_headers, payload)
        except aiohttp.ClientHttpProxyError as exc:
            raise self._refused(f"{exc.status} {exc.message}") from exc
        except aiohttp.ClientProxyConnectionError as exc:
            raise HttpConnectError(
                f"cannot connect to the proxy {self._route.display}: {_os_reason(exc)}"
            ) from exc
        except TimeoutError as exc:
            raise HttpTimeoutError(
                f"no complete response from {self._target} through the proxy"
                f" {self._route.display} within {limit:g} s"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise HttpConnectError(
                f"cannot connect to {self._target} through the proxy {self._route.display}:"
                f" {_os_reason(exc)}"
            ) from exc
        except aiohttp.ClientError as exc:
            raise HttpProtocolError(
                f"request to {self._target} through the proxy {self._route.display} failed:"
                f" {describe(exc)}"
            ) from exc

    def _check_proxy_answer(self, status: int, reason: str | None, headers: Any) -> None:
        """An error the proxy answered itself (no AWS request id): 4xx is a refusal (not
        worth retrying), 5xx a failure on its side (retried like a connection failure)."""
        if status < 400 or any(name in headers for name in _AWS_REQUEST_ID_HEADERS):
            return
        if status == 407:
            raise self._refused(f"407 {reason}: the proxy needs (other) credentials")
        if status < 500:
            raise self._refused(f"{status} {reason}")
        raise HttpConnectError(
            f"the proxy {self._route.display} answered {status} {reason} for {self._target}"
        )

    def _request_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        merged = dict(headers)
        merged.update(self._request_extra)
        return merged

    def _refused(self, why: str) -> HttpProxyRefusedError:
        return HttpProxyRefusedError(
            f"the proxy {self._route.display} refused the request to {self._target}: {why}"
        )


async def _read_capped(answer: aiohttp.ClientResponse, cap: int, target: str) -> bytes:
    length = answer.content_length
    if length is not None and length > cap:
        raise HttpBodyTooLargeError(
            f"answer from {target} is larger than the {cap}-byte cap (Content-Length {length})"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > cap:
            raise HttpBodyTooLargeError(f"answer from {target} is larger than the {cap}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


def _lower_headers(headers: Any) -> dict[str, str]:
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = value if key not in lowered else f"{lowered[key]}, {value}"
    return lowered


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    return describe(exc.os_error) if exc.os_error is not None else describe(exc)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
