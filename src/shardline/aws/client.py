"""One small signed AWS JSON 1.0 client, for DynamoDB (the lease table) and DynamoDB Streams.

botocore is used only for what it is good at: the credential chain (with refresh), region
and endpoint resolution (:mod:`.endpoints`), and SigV4 signing (:mod:`.signing`). Requests
go out over a small keep-alive HTTP/1.1 client (:mod:`shardline.aws.transport.http`;
aiohttp's client cost ~4x more CPU a request) and responses are parsed with orjson
(:mod:`.parsing`), or msgspec for GetRecords; botocore's model-driven parser is never used
(it costs ~190 ms per 1000-record GetRecords page, orjson ~13 ms).

AWS error codes are mapped onto :mod:`shardline.errors` in one place,
:func:`~shardline.aws.errors.error_from_response`. Retriable errors (throttling, 5xx,
connection failures) are retried inside :meth:`AwsJsonClient.call` with capped exponential
backoff and full jitter (:class:`~shardline.aws.backoff.Backoff`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import zlib
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import orjson

from shardline.aws.backoff import Backoff
from shardline.aws.credentials import load_credentials, remember_credentials
from shardline.aws.deadlines import attempt_timeout
from shardline.aws.endpoints import ResolvedEndpoint, botocore_session, resolve_endpoint
from shardline.aws.errors import error_from_response
from shardline.aws.parsing import loads_object
from shardline.aws.protocol import TARGET_PREFIXES, USER_AGENT, check_service
from shardline.aws.settings import AwsSettings
from shardline.aws.signing import signed_headers
from shardline.aws.transport.http import (
    HttpBodyTooLargeError,
    HttpError,
    HttpPool,
    HttpProtocolError,
)
from shardline.aws.transport.http_wire import (
    HttpContentEncodingError,
    HttpProxyRefusedError,
    decode_content,
)
from shardline.aws.transport.proxy import ProxyRoute, ProxyTransport, Transport, proxy_for
from shardline.aws.transport.trust import tls_context
from shardline.errors import (
    ConnectionFailedError,
    ServiceUnavailableError,
    ShardlineError,
    ThrottledError,
)
from shardline.redact import redact_url

__all__ = ["AwsJsonClient"]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class AwsJsonClient:
    """A signed AWS JSON 1.0 client for one service: ``dynamodb`` or ``dynamodbstreams``.

    Build it with :meth:`create`. Its pool of keep-alive connections is created on the
    first :meth:`call`; use one client per event loop and :meth:`close` it when done (or
    use ``async with``).
    """

    def __init__(
        self,
        service: str,
        endpoint: ResolvedEndpoint,
        credentials: Any,
        settings: AwsSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        tls: ssl.SSLContext | None = None,
        proxy: ProxyRoute | None = None,
    ) -> None:
        """Low-level constructor: everything already resolved. Prefer :meth:`create`.

        ``tls`` verifies https endpoints (default: the system's authorities; :meth:`create`
        passes botocore's, see :mod:`shardline.aws.transport.trust`).
        ``proxy``: send every request through it (aiohttp's client) instead of directly
        (:class:`~shardline.aws.transport.http.HttpPool`).
        """
        check_service(service)
        self.service = service
        self.endpoint_url = endpoint.endpoint_url
        self.region = endpoint.region
        self._url = endpoint.url
        self._target_prefix = TARGET_PREFIXES[service]
        self._credentials = credentials
        self._last_frozen: Any = None
        self._settings = settings
        self._backoff = Backoff(settings.base_backoff, settings.max_backoff, rng)
        self._sleep = sleep
        self._pool: Transport | None = None
        self._tls = tls
        self.proxy = proxy
        #: Called with the operation name each time a call is throttled (for metrics).
        self.on_throttle: Callable[[str], None] | None = None

    @classmethod
    def create(
        cls,
        service: str,
        settings: AwsSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> AwsJsonClient:
        """Resolve region, endpoint and credentials (synchronously) and build a client.

        Raises :class:`ConfigError` (no region, unknown profile or service) or
        :class:`CredentialsError` (no credentials), each with one clear line.
        """
        check_service(service)
        session = botocore_session(settings)
        endpoint = resolve_endpoint(service, settings, session)
        credentials = load_credentials(session)
        tls = tls_context(session.get_config_variable("ca_bundle"))
        proxy = proxy_for(endpoint.url)
        if proxy is not None:
            log.info(
                "%s: requests to %s go through the proxy %s", service, endpoint.url, proxy.display
            )
        return cls(
            service, endpoint, credentials, settings, sleep=sleep, rng=rng, tls=tls, proxy=proxy
        )

    def __repr__(self) -> str:
        via = f", proxy={self.proxy.display!r}" if self.proxy is not None else ""
        return (
            f"AwsJsonClient({self.service!r}, {redact_url(self.endpoint_url)!r},"
            f" region={self.region!r}{via})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def call(
        self, operation: str, params: Mapping[str, Any], *, deadline: float | None = None
    ) -> dict[str, Any]:
        """Call ``operation`` with ``params`` (wire-format JSON) and return the parsed answer.

        Retriable errors (throttling, 5xx, connection failures, answers that do not parse)
        are retried up to ``max_attempts`` times with capped exponential backoff and full
        jitter; then the last error is raised. Other errors are raised at once. After a
        connection failure or timeout the retry goes out on a fresh connection.

        ``deadline`` (seconds; default: the settings' ``call_deadlines`` entry for
        ``operation``, else none) bounds the whole call, retries included: each attempt
        gets at most half of it, and no retry starts that could not end before it.
        """
        if deadline is None:  # subclasses that override call_parsed may not take it
            return await self.call_parsed(operation, params, loads_object)
        return await self.call_parsed(operation, params, loads_object, deadline=deadline)

    async def call_parsed(
        self,
        operation: str,
        params: Mapping[str, Any],
        parse: Callable[[bytes], T],
        *,
        deadline: float | None = None,
    ) -> T:
        """Like :meth:`call`, with ``parse`` turning the answer body into the result.

        ``parse`` raises :class:`ValueError` for a body it cannot read; that answer is
        treated as a server error (retried, then raised as ``MalformedResponse``).
        """
        body = orjson.dumps(params)
        target = f"{self._target_prefix}.{operation}"
        if deadline is None:
            deadline = self._settings.deadline_for(operation)
        clock = self._clock()
        ends = None if deadline is None else clock() + deadline
        attempt, fresh = 1, False
        while True:
            remaining = None if ends is None else ends - clock()
            limit = attempt_timeout(self._settings.read_timeout, remaining, deadline)
            try:
                answer = await self._send(operation, target, body, limit, fresh)
                return _parse_body(answer, parse, operation)
            except ShardlineError as error:
                if isinstance(error, ThrottledError) and self.on_throttle is not None:
                    self.on_throttle(operation)
                delay = self._backoff.delay(attempt)
                if not self._may_retry(error, attempt, delay, ends, clock):
                    raise
                fresh = isinstance(error, ConnectionFailedError)
                log.debug(
                    "%s attempt %d failed (%s); retrying in %.3fs", operation, attempt, error, delay
                )
            await self._sleep(delay)
            attempt += 1

    def _may_retry(
        self,
        error: ShardlineError,
        attempt: int,
        delay: float,
        ends: float | None,
        clock: Callable[[], float],
    ) -> bool:
        if not error.retriable or attempt >= self._settings.max_attempts:
            return False
        return ends is None or clock() + delay < ends

    @staticmethod
    def _clock() -> Callable[[], float]:
        try:
            return asyncio.get_running_loop().time
        except RuntimeError:  # pragma: no cover - calls run on a loop
            import time

            return time.monotonic

    async def close(self) -> None:
        """Close the pooled HTTP connections. The client may be used again afterwards."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _send(
        self, operation: str, target: str, body: bytes, timeout: float, fresh: bool
    ) -> bytes:
        headers = signed_headers(
            self._url, target, body, await self._frozen_credentials(), self.region
        )
        headers["User-Agent"] = USER_AGENT
        headers["Accept-Encoding"] = "identity"  # unsigned; keeps x-amz-crc32 meaningful
        try:
            response = await self._http().post(body, headers, timeout=timeout, fresh=fresh)
            payload = response.body
            encoding = response.headers.get("content-encoding")
            if encoding is not None:
                payload = decode_content(encoding, payload, self._settings.max_body, self._url)
        except (HttpBodyTooLargeError, HttpContentEncodingError, HttpProxyRefusedError) as exc:
            raise _not_retriable(ConnectionFailedError(f"{operation}: {exc}")) from exc
        except HttpProtocolError as exc:
            raise ConnectionFailedError(f"{operation}: {self._where()}: {exc}") from exc
        except HttpError as exc:
            raise ConnectionFailedError(
                f"{operation}: cannot reach {self._where()}: {exc}"
            ) from exc
        return _checked_answer(
            response.status, payload, response.headers.get("x-amz-crc32"), operation, response.body
        )

    def _where(self) -> str:
        return redact_url(self.endpoint_url)

    async def _frozen_credentials(self) -> Any:
        """Current credentials; a due refresh runs off the event loop (it may do I/O).

        New ones (a refresh) are added to the masked secrets.
        """
        refresh_needed = getattr(self._credentials, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            frozen = await asyncio.to_thread(self._credentials.get_frozen_credentials)
        else:
            frozen = self._credentials.get_frozen_credentials()
        if frozen != self._last_frozen:
            remember_credentials(frozen)
            self._last_frozen = frozen
        return frozen

    def _http(self) -> Transport:
        if self._pool is None and self.proxy is not None:
            self._pool = ProxyTransport(
                self._url,
                self.proxy,
                max_connections=self._settings.max_connections,
                connect_timeout=self._settings.connect_timeout,
                read_timeout=self._settings.read_timeout,
                ssl_context=self._tls,
                max_body=self._settings.max_body,
            )
        elif self._pool is None:
            self._pool = HttpPool(
                self._url,
                max_connections=self._settings.max_connections,
                connect_timeout=self._settings.connect_timeout,
                read_timeout=self._settings.read_timeout,
                ssl_context=self._tls,
                max_body=self._settings.max_body,
            )
        return self._pool


def _not_retriable(error: ConnectionFailedError) -> ConnectionFailedError:
    """An answer that will come back the same (too large, an encoding shardline cannot
    read): retrying cannot help, so the error says so and is raised at once."""
    error.retriable = False
    return error


def _checked_answer(
    status: int, payload: bytes, crc32: str | None, operation: str, raw: bytes | None = None
) -> bytes:
    """The body of a successful answer whose checksum matches; else the mapped error.

    ``raw`` is the body as sent when it was content-encoded: the checksum may be over
    either (AWS sums what it sent; a compressing middlebox keeps AWS's sum)."""
    if status >= 300:
        raise error_from_response(status, payload, operation)
    if (
        crc32 is not None
        and crc32.isdigit()
        and int(crc32) != zlib.crc32(payload)
        and (raw is None or raw is payload or int(crc32) != zlib.crc32(raw))
    ):
        raise ServiceUnavailableError(
            "CRC32CheckFailed",
            "response body does not match x-amz-crc32",
            status=status,
            operation=operation,
        )
    return payload


def _parse_body(payload: bytes, parse: Callable[[bytes], T], operation: str) -> T:
    try:
        return parse(payload)
    except ValueError as exc:
        raise ServiceUnavailableError(
            "MalformedResponse",
            f"response cannot be read: {exc}",
            status=200,
            operation=operation,
        ) from exc
