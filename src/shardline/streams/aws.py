"""One small signed AWS JSON 1.0 client, for DynamoDB (the lease table) and DynamoDB Streams.

botocore is used only for what it is good at: the credential chain (with refresh), region
and endpoint resolution, and SigV4 signing. Requests go out over a small keep-alive HTTP/1.1
client (:mod:`shardline.streams.http`; aiohttp's client cost ~4x more CPU a request) and
responses are parsed with orjson, or msgspec for GetRecords; botocore's model-driven parser
is never used (it costs ~190 ms per 1000-record GetRecords page, orjson ~13 ms).

AWS error codes are mapped onto :mod:`shardline.errors` in one place,
:func:`error_from_response`. Retriable errors (throttling, 5xx, connection failures) are
retried inside :meth:`AwsJsonClient.call` with capped exponential backoff and full jitter.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hashlib
import hmac
import logging
import os
import random
import ssl
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import urlsplit

import botocore.auth
import botocore.exceptions
import botocore.session
import orjson
from botocore.auth import SigV4Auth
from botocore.config import Config

from shardline.errors import (
    AccessDeniedError,
    AwsError,
    ConditionalCheckFailedError,
    ConfigError,
    ConnectionFailedError,
    CredentialsError,
    ExpiredIteratorError,
    ResourceInUseError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ShardlineError,
    ThrottledError,
    TrimmedDataAccessError,
    ValidationError,
)
from shardline.redact import redact_url
from shardline.streams.deadlines import LEASE_OPERATIONS, attempt_timeout, lease_call_deadline
from shardline.streams.http import (
    DEFAULT_MAX_BODY,
    HttpBodyTooLargeError,
    HttpError,
    HttpPool,
    HttpProtocolError,
)
from shardline.streams.http_wire import (
    HttpContentEncodingError,
    HttpProxyRefusedError,
    decode_content,
)
from shardline.streams.proxy import ProxyRoute, ProxyTransport, Transport, proxy_for
from shardline.streams.trust import ca_bundle_path, tls_context

__all__ = [
    "JSON_CONTENT_TYPE",
    "LEASE_OPERATIONS",
    "MAPPED_ERROR_CODES",
    "SIGNING_NAME",
    "TARGET_PREFIXES",
    "AwsJsonClient",
    "AwsSettings",
    "Backoff",
    "ResolvedEndpoint",
    "attempt_timeout",
    "ca_bundle_path",
    "error_from_response",
    "resolve_endpoint",
    "signed_headers",
]

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE: Final = "application/x-amz-json-1.0"
SIGNING_NAME: Final = "dynamodb"
"""Both DynamoDB and DynamoDB Streams sign as ``dynamodb``."""
TARGET_PREFIXES: Final[Mapping[str, str]] = {
    "dynamodb": "DynamoDB_20120810",
    "dynamodbstreams": "DynamoDBStreams_20120810",
}
_PROBE_OPERATIONS: Final[Mapping[str, str]] = {
    "dynamodb": "list_tables",
    "dynamodbstreams": "list_streams",
}
_USER_AGENT: Final = "shardline/0.1 (aws-json-1.0)"

# --- error mapping ---------------------------------------------------------------------

_THROTTLING_CODES: Final = frozenset(
    {
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
    }
)
_UNAVAILABLE_CODES: Final = frozenset(
    {"InternalServerError", "InternalFailure", "ServiceUnavailable"}
)
_CREDENTIAL_CODES: Final = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "MissingAuthenticationTokenException",
        "IncompleteSignatureException",
    }
)
_ERROR_CLASSES: Final[Mapping[str, type[AwsError]]] = {
    "ResourceNotFoundException": ResourceNotFoundError,
    "ResourceInUseException": ResourceInUseError,
    "ValidationException": ValidationError,
    "SerializationException": ValidationError,
    "ExpiredIteratorException": ExpiredIteratorError,
    "TrimmedDataAccessException": TrimmedDataAccessError,
    "ConditionalCheckFailedException": ConditionalCheckFailedError,
    "AccessDeniedException": AccessDeniedError,
    **dict.fromkeys(_THROTTLING_CODES, ThrottledError),
    **dict.fromkeys(_UNAVAILABLE_CODES, ServiceUnavailableError),
}
MAPPED_ERROR_CODES: Final = frozenset(_ERROR_CLASSES) | _CREDENTIAL_CODES
"""Every AWS error code :func:`error_from_response` maps to a specific class."""


def error_from_response(status: int, body: bytes, operation: str) -> AwsError | CredentialsError:
    """Map one AWS JSON error response onto the :mod:`shardline.errors` tree.

    This is the only place AWS error codes become shardline exceptions. Any 5xx is a
    :class:`ServiceUnavailableError` and HTTP 429 a :class:`ThrottledError`, whatever the
    code; a rejected signature or token is a :class:`CredentialsError`; an unknown code
    is a plain :class:`AwsError`.
    """
    code, message = _parse_error_body(status, body)
    if status >= 500:
        return ServiceUnavailableError(code, message, status=status, operation=operation)
    if status == 429:
        return ThrottledError(code, message, status=status, operation=operation)
    if code in _CREDENTIAL_CODES:
        return CredentialsError(
            f"{operation}: {code}: {message} (the service rejected the AWS credentials;"
            " check AWS_PROFILE, AWS_ACCESS_KEY_ID or the role, and the system clock)"
        )
    error_class = _ERROR_CLASSES.get(code, AwsError)
    return error_class(code, message, status=status, operation=operation)


def _parse_error_body(status: int, body: bytes) -> tuple[str, str]:
    """Read ``__type`` and ``message``/``Message`` from an error body; tolerate non-JSON."""
    try:
        data = _loads_object(body)
    except ValueError:
        data = {}
    raw_type = data.get("__type")
    code = raw_type.rpartition("#")[2] if isinstance(raw_type, str) and raw_type else ""
    message = data.get("message", data.get("Message"))
    if not isinstance(message, str):
        message = body[:200].decode("utf-8", "replace").strip() if not data else ""
    return code or f"HTTP{status}", message or "(no message)"


#: Bodies at least this long are parsed with the cyclic garbage collector paused.
GC_PAUSE_BYTES: Final = 64 * 1024


def _loads_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object; an empty body is an empty object. Raises ValueError otherwise."""
    if not body:
        return {}
    data = _loads_gc_paused(body) if len(body) >= GC_PAUSE_BYTES else orjson.loads(body)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _loads_gc_paused(body: bytes) -> Any:
    """``orjson.loads`` with the cyclic GC paused (only if it was on; restored after).

    A full GetRecords page becomes ~300,000 container objects. With the collector on,
    every 700 of them trigger a young collection, and the older generations -- which hold
    the pages other shards are still processing -- get traversed again and again: in a
    worker with several full pages in flight, parsing one took ~6x as long as with the
    collector paused, and the worker's throughput doubled (see docs/performance.md).
    orjson holds the GIL for the whole call, so no other thread runs while the collector
    is paused; the new objects are tracked as usual and the next collection sees them.
    """
    if not gc.isenabled():
        return orjson.loads(body)
    gc.disable()
    try:
        return orjson.loads(body)
    finally:
        gc.enable()


# --- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsSettings:
    """How to reach AWS (or the local stack). ``None`` means: let botocore's chain decide.

    ``endpoint_url`` applies to both services; ``dynamodb_endpoint_url`` and
    ``streams_endpoint_url`` override it for the lease table and the stream. Left unset,
    botocore honours ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_DYNAMODB``,
    ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``, profiles and the FIPS/dual-stack settings.

    ``connect_timeout`` covers TCP connect and TLS handshake; ``read_timeout`` is the time
    from sending a request to having its complete answer (not a gap between reads); a
    call that passes either is retried like any connection failure, on a fresh connection.

    ``call_deadlines`` maps operation names to a deadline in seconds for the whole call,
    retries included; each attempt then gets at most half of it, so a request stuck on a
    dead connection is retried on a fresh one in time. :meth:`with_lease_deadlines` sets
    them for the lease-table writes and reads from the failover time. ``max_body`` caps
    an answer's size (as sent and decoded).
    """

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    dynamodb_endpoint_url: str | None = None
    streams_endpoint_url: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 8
    base_backoff: float = 0.05
    max_backoff: float = 5.0
    max_connections: int = 512
    max_body: int = DEFAULT_MAX_BODY
    call_deadlines: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError("connect_timeout and read_timeout must be positive")
        if self.base_backoff < 0 or self.max_backoff < self.base_backoff:
            raise ConfigError("backoff must satisfy 0 <= base_backoff <= max_backoff")
        if self.max_connections < 1:
            raise ConfigError(f"max_connections must be at least 1, got {self.max_connections}")
        if self.max_body < 1:
            raise ConfigError(f"max_body must be at least 1, got {self.max_body}")
        for operation, seconds in self.call_deadlines:
            if not seconds > 0:
                raise ConfigError(f"the deadline of {operation} must be positive, got {seconds}")

    def with_lease_deadlines(self, failover_time: float) -> AwsSettings:
        """These settings with a deadline of ``failover_time / 4`` on the lease-table item
        calls (:data:`LEASE_OPERATIONS`): a renewal or checkpoint finishes, or fails after
        retrying on a fresh connection, well inside the renew interval (failover / 3)."""
        deadline = lease_call_deadline(failover_time)
        others = tuple((op, s) for op, s in self.call_deadlines if op not in LEASE_OPERATIONS)
        lease = tuple((op, deadline) for op in sorted(LEASE_OPERATIONS))
        return replace(self, call_deadlines=others + lease)

    def deadline_for(self, operation: str) -> float | None:
        """The whole-call deadline of ``operation`` in seconds, or None (no deadline)."""
        for name, seconds in self.call_deadlines:
            if name == operation:
                return seconds
        return None

    def explicit_endpoint(self, service: str) -> str | None:
        """The endpoint these settings force for ``service``, or None to let botocore decide."""
        specific = (
            self.dynamodb_endpoint_url if service == "dynamodb" else self.streams_endpoint_url
        )
        return specific or self.endpoint_url


# --- retry policy ------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**(n-1)))``."""

    base: float
    cap: float
    rng: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(attempt - 1, 62))
        return self.rng() * ceiling


# --- endpoint resolution -----------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedEndpoint:
    """Where to send requests for one service, and how to sign them."""

    url: str
    region: str
    signing_name: str = SIGNING_NAME

    @property
    def endpoint_url(self) -> str:
        """The URL without the trailing ``/`` botocore adds for the root path."""
        return self.url[:-1] if self.url.endswith("/") else self.url


class _Resolved(Exception):
    """Raised from botocore's ``before-sign`` hook to stop the probe before any I/O."""

    def __init__(self, endpoint: ResolvedEndpoint) -> None:
        super().__init__(endpoint.url)
        self.endpoint = endpoint


def resolve_endpoint(
    service: str, settings: AwsSettings, session: botocore.session.Session | None = None
) -> ResolvedEndpoint:
    """Resolve the URL and signing region exactly as botocore would for ``service``.

    A botocore client is built once and one operation is started with a ``before-sign``
    hook that records the request URL and stops it: the endpoint rules (regions, FIPS,
    dual-stack, partitions, account-ID endpoints, ``AWS_ENDPOINT_URL*``) are botocore's
    own, and nothing is sent. ``client.meta.endpoint_url`` is not used: it differs from
    the real request URL for some settings (e.g. dual-stack Streams, GovCloud FIPS).
    """
    _check_service(service)
    session = session or _botocore_session(settings)
    client = _botocore_client(session, service, settings)
    try:
        endpoint = _probe(client, service)
    finally:
        client.close()
    return endpoint


def _probe(client: Any, service: str) -> ResolvedEndpoint:
    service_id = client.meta.service_model.service_id.hyphenize()
    operation = client.meta.method_to_api_mapping[_PROBE_OPERATIONS[service]]

    def capture(request: Any, signing_name: str, region_name: str, **_: Any) -> None:
        signing = request.context.get("signing") or {}
        raise _Resolved(
            ResolvedEndpoint(
                url=request.url,
                region=signing.get("region") or region_name,
                signing_name=signing.get("signing_name") or signing_name,
            )
        )

    client.meta.events.register(f"before-sign.{service_id}.{operation}", capture)
    try:
        getattr(client, _PROBE_OPERATIONS[service])()
    except _Resolved as resolved:
        return resolved.endpoint
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigError(f"cannot resolve the {service} endpoint: {exc}") from exc
    raise ConfigError(f"cannot resolve the {service} endpoint: botocore sent no request")


def _botocore_session(settings: AwsSettings) -> botocore.session.Session:
    return botocore.session.Session(profile=settings.profile)


def _botocore_client(session: botocore.session.Session, service: str, settings: AwsSettings) -> Any:
    try:
        client = session.create_client(
            service,
            region_name=region_or_aws_region(settings.region),
            endpoint_url=settings.explicit_endpoint(service),
            config=_endpoint_config(session),
        )
    except botocore.exceptions.NoRegionError as exc:
        raise ConfigError(
            "no AWS region is configured: set AWS_REGION, a region in the profile, or region="
        ) from exc
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"AWS profile {settings.profile!r} was not found: {exc}") from exc
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise ConfigError(f"cannot configure the {service} client: {exc}") from exc
    if not client.meta.region_name:
        client.close()
        raise ConfigError("no AWS region is configured: set AWS_REGION or region=")
    return client


def region_or_aws_region(region: str | None) -> str | None:
    """``region``, else ``AWS_REGION``; None lets botocore read ``AWS_DEFAULT_REGION`` and
    the profile. botocore itself ignores ``AWS_REGION``, which the other AWS SDKs (and
    Lambda, ECS) use."""
    return region or os.environ.get("AWS_REGION") or None


def _endpoint_config(session: botocore.session.Session) -> Config:
    """Regional endpoints, unless the user *requires* account-ID endpoints.

    botocore's account-ID endpoints (``<account>.ddb.<region>...``) depend on each request's
    ARN (stream ARN, iterator, table ARN) and the credentials' account; one URL per client
    cannot follow that. The regional endpoint serves every account, so it is the default
    here. With ``account_id_endpoint_mode = required`` botocore's choice (from the
    credentials' account) is kept.
    """
    mode = session.get_config_variable("account_id_endpoint_mode")
    return Config(account_id_endpoint_mode="required" if mode == "required" else "disabled")


def _check_service(service: str) -> None:
    if service not in TARGET_PREFIXES:
        raise ConfigError(f"unknown service {service!r}: expected one of {sorted(TARGET_PREFIXES)}")


# --- credentials and signing -------------------------------------------------------------


def _load_credentials(session: botocore.session.Session) -> Any:
    """The session's credentials (refreshable when the source is); CredentialsError if none."""
    hint = "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role"
    try:
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"AWS profile not found: {exc}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise CredentialsError(f"cannot load AWS credentials: {exc}") from exc
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise CredentialsError(f"no AWS credentials were found: {hint}")
    return credentials


def signed_headers(
    url: str, target: str, body: bytes, credentials: Any, region: str
) -> dict[str, str]:
    """SigV4-sign one AWS JSON 1.0 POST and return the headers to send.

    ``credentials`` are frozen credentials (access key, secret key, token). The signed
    headers are the ones botocore's own client signs: ``Content-Type``, ``Host``,
    ``X-Amz-Date``, ``X-Amz-Security-Token`` (with a session token), ``X-Amz-Target``.

    The signature is botocore's SigV4 (``SigV4Auth``), computed without building an
    ``AWSRequest``: the canonical URI, query and host come from botocore once per URL,
    and the derived signing key is kept for its day. That is ~10x cheaper per request
    (84 -> 8 us here), which matters with hundreds of idle shards each polled twice a
    second (docs/performance.md). The unit tests check it equals botocore's signature.
    """
    timestamp = botocore.auth.get_current_datetime().strftime(_SIGV4_TIMESTAMP)
    day = timestamp[:8]
    uri, query, host = _canonical_location(url)
    token = credentials.token
    headers = {"X-Amz-Target": target, "Content-Type": JSON_CONTENT_TYPE, "X-Amz-Date": timestamp}
    if token:
        headers["X-Amz-Security-Token"] = token
        canonical_headers = (
            f"content-type:{JSON_CONTENT_TYPE}\nhost:{host}\nx-amz-date:{timestamp}\n"
            f"x-amz-security-token:{_trim(token)}\nx-amz-target:{_trim(target)}\n"
        )
        names = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
    else:
        canonical_headers = (
            f"content-type:{JSON_CONTENT_TYPE}\nhost:{host}\nx-amz-date:{timestamp}\n"
            f"x-amz-target:{_trim(target)}\n"
        )
        names = "content-type;host;x-amz-date;x-amz-target"
    canonical_request = (
        f"POST\n{uri}\n{query}\n{canonical_headers}\n{names}\n{hashlib.sha256(body).hexdigest()}"
    )
    scope = f"{day}/{region}/{SIGNING_NAME}/aws4_request"
    string_to_sign = (
        f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n"
        f"{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    )
    key = _signing_key(credentials.secret_key, day, region)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={names}, Signature={signature}"
    )
    return headers


_SIGV4_TIMESTAMP: Final = botocore.auth.SIGV4_TIMESTAMP


def _trim(value: str) -> str:
    return " ".join(value.split())


@functools.lru_cache(maxsize=64)
def _canonical_location(url: str) -> tuple[str, str, str]:
    """Canonical URI, canonical query string and ``host`` value of ``url``, as botocore
    computes them for SigV4."""
    auth = SigV4Auth(None, SIGNING_NAME, "us-east-1")
    parts = urlsplit(url)
    return (
        auth._normalize_url_path(parts.path),
        auth._canonical_query_string_url(parts),
        botocore.auth._host_from_url(url),
    )


@functools.lru_cache(maxsize=4)
def _signing_key(secret_key: str, day: str, region: str) -> bytes:
    """SigV4's derived key: HMAC chain over day, region, service, ``aws4_request``."""
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, SIGNING_NAME, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


# --- the client --------------------------------------------------------------------------

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
        passes botocore's, see :mod:`.trust`).
        ``proxy``: send every request through it (aiohttp's client) instead of directly
        (:class:`~shardline.streams.http.HttpPool`).
        """
        _check_service(service)
        self.service = service
        self.endpoint_url = endpoint.endpoint_url
        self.region = endpoint.region
        self._url = endpoint.url
        self._target_prefix = TARGET_PREFIXES[service]
        self._credentials = credentials
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
        _check_service(service)
        session = _botocore_session(settings)
        endpoint = resolve_endpoint(service, settings, session)
        credentials = _load_credentials(session)
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
            return await self.call_parsed(operation, params, _loads_object)
        return await self.call_parsed(operation, params, _loads_object, deadline=deadline)

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
        headers["User-Agent"] = _USER_AGENT
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
        """Current credentials; a due refresh runs off the event loop (it may do I/O)."""
        refresh_needed = getattr(self._credentials, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            return await asyncio.to_thread(self._credentials.get_frozen_credentials)
        return self._credentials.get_frozen_credentials()

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
