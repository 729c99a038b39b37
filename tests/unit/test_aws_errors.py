"""AWS error codes -> shardline.errors, and the retry policy of AwsJsonClient.call.

Retries are exercised against a local aiohttp server on 127.0.0.1 that answers scripted
errors (throttling, 5xx, bad checksums, slow answers): the local stack cannot produce them
on demand. Sleeps are injected, so no test waits for real backoff.
"""

from __future__ import annotations

import asyncio
import socket
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from shardline.aws.backoff import Backoff
from shardline.aws.client import AwsJsonClient
from shardline.aws.endpoints import ResolvedEndpoint
from shardline.aws.errors import error_from_response
from shardline.aws.settings import AwsSettings
from shardline.aws.transport.http import HttpConnectError
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
    ThrottledError,
    TrimmedDataAccessError,
    ValidationError,
)

PREFIX = "com.amazonaws.dynamodb.v20120810#"


def _body(code: str, message: str = "boom", key: str = "message") -> bytes:
    return orjson.dumps({"__type": code, key: message})


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ResourceNotFoundException", ResourceNotFoundError),
        ("ResourceInUseException", ResourceInUseError),
        ("ValidationException", ValidationError),
        ("SerializationException", ValidationError),
        ("ExpiredIteratorException", ExpiredIteratorError),
        ("TrimmedDataAccessException", TrimmedDataAccessError),
        ("ConditionalCheckFailedException", ConditionalCheckFailedError),
        ("AccessDeniedException", AccessDeniedError),
        ("LimitExceededException", ThrottledError),
        ("ThrottlingException", ThrottledError),
        ("ProvisionedThroughputExceededException", ThrottledError),
        ("RequestLimitExceeded", ThrottledError),
        ("InternalServerError", ServiceUnavailableError),
        ("SomethingNewException", AwsError),
    ],
)
@pytest.mark.parametrize("prefix", [PREFIX, ""])
def test_code_maps_to_class(code: str, expected: type[AwsError], prefix: str) -> None:
    error = error_from_response(400, _body(prefix + code), "GetRecords")
    assert type(error) is expected
    assert isinstance(error, AwsError)
    assert (error.code, error.message, error.status, error.operation) == (
        code,
        "boom",
        400,
        "GetRecords",
    )
    assert str(error) == f"GetRecords: {code}: boom"


@pytest.mark.parametrize(
    "code",
    [
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "MissingAuthenticationTokenException",
        "IncompleteSignatureException",
    ],
)
def test_rejected_credentials_are_credentials_errors(code: str) -> None:
    error = error_from_response(400, _body(PREFIX + code, "bad token"), "ListStreams")
    assert isinstance(error, CredentialsError)
    assert not error.retriable
    assert f"ListStreams: {code}: bad token" in str(error)
    assert "\n" not in str(error)


def test_capitalised_message_is_read() -> None:
    error = error_from_response(400, _body("ValidationException", "Big M", "Message"), "X")
    assert isinstance(error, ValidationError)
    assert error.message == "Big M"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_any_5xx_is_service_unavailable(status: int) -> None:
    error = error_from_response(status, _body("ValidationException"), "GetRecords")
    assert isinstance(error, ServiceUnavailableError)
    assert error.retriable and error.status == status


def test_429_is_throttled() -> None:
    assert isinstance(error_from_response(429, b"", "GetRecords"), ThrottledError)


@pytest.mark.parametrize("body", [b"", b"<html>Bad Gateway</html>", b"[1, 2]", b"{"])
def test_non_json_error_body_still_maps(body: bytes) -> None:
    error = error_from_response(502, body, "GetRecords")
    assert isinstance(error, ServiceUnavailableError)
    assert error.code == "HTTP502"


def test_non_retriable_classes() -> None:
    for code in ("ResourceNotFoundException", "ValidationException", "AccessDeniedException"):
        assert not error_from_response(400, _body(code), "X").retriable


# --- backoff -----------------------------------------------------------------------


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.05, cap=1.0, rng=lambda: 1.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]
    assert Backoff(base=0.05, cap=1.0, rng=lambda: 0.0).delay(5) == 0.0


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    jitter=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_backoff_is_full_jitter_within_the_cap(attempt: int, jitter: float) -> None:
    delay = Backoff(base=0.05, cap=5.0, rng=lambda: jitter).delay(attempt)
    assert 0.0 <= delay <= 5.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"connect_timeout": 0},
        {"read_timeout": -1},
        {"base_backoff": 2.0, "max_backoff": 1.0},
        {"max_connections": 0},
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        AwsSettings(**kwargs)


# --- retries against a local server ----------------------------------------------------


class Scripted:
    """A local HTTP server answering a script of responses, one per request."""

    def __init__(self, answers: list[Callable[[], web.StreamResponse]]) -> None:
        self.answers = answers
        self.requests = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        answer = self.answers[min(self.requests, len(self.answers) - 1)]
        self.requests += 1
        return answer()


def aws_error(code: str, status: int = 400) -> Callable[[], web.Response]:
    return lambda: web.Response(
        status=status, body=_body(PREFIX + code), content_type="application/x-amz-json-1.0"
    )


def ok(payload: dict[str, Any], crc32: str | None = None) -> Callable[[], web.Response]:
    headers = {"x-amz-crc32": crc32} if crc32 else {}
    return lambda: web.Response(
        body=orjson.dumps(payload), content_type="application/x-amz-json-1.0", headers=headers
    )


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Scripted], Any]]:
    servers: list[TestServer] = []

    async def start(script: Scripted) -> str:
        app = web.Application()
        app.router.add_post("/", script.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/"))

    yield start
    for server in servers:
        await server.close()


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_client(url: str, sleeps: Sleeps, **settings: Any) -> AwsJsonClient:
    return AwsJsonClient(
        "dynamodbstreams",
        ResolvedEndpoint(url=url, region="us-east-1"),
        Credentials("AKID", "SECRET"),
        AwsSettings(**settings),
        sleep=sleeps,
        rng=lambda: 1.0,
    )


async def test_throttling_is_retried_until_success(serve: Any) -> None:
    script = Scripted(
        [aws_error("LimitExceededException"), aws_error("LimitExceededException"), ok({"a": 1})]
    )
    sleeps = Sleeps()
    async with make_client(await serve(script), sleeps, base_backoff=0.1) as client:
        assert await client.call("GetRecords", {"ShardIterator": "x"}) == {"a": 1}
    assert script.requests == 3
    assert sleeps.delays == [0.1, 0.2]


async def test_5xx_exhausts_attempts(serve: Any) -> None:
    script = Scripted([aws_error("InternalServerError", status=500)])
    sleeps = Sleeps()
    async with make_client(await serve(script), sleeps, max_attempts=4) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.call("GetRecords", {"ShardIterator": "x"})
    assert script.requests == 4
    assert len(sleeps.delays) == 3
    assert caught.value.code == "InternalServerError"


async def test_validation_error_is_not_retried(serve: Any) -> None:
    script = Scripted([aws_error("ValidationException"), ok({})])
    sleeps = Sleeps()
    async with make_client(await serve(script), sleeps) as client:
        with pytest.raises(ValidationError):
            await client.call("GetRecords", {"ShardIterator": "x"})
    assert script.requests == 1
    assert sleeps.delays == []


async def test_bad_checksum_is_retried(serve: Any) -> None:
    good = orjson.dumps({"a": 1})
    script = Scripted([ok({"a": 1}, crc32="12345"), ok({"a": 1}, crc32=str(zlib.crc32(good)))])
    async with make_client(await serve(script), Sleeps()) as client:
        assert await client.call("GetRecords", {}) == {"a": 1}
    assert script.requests == 2


async def test_malformed_success_body_is_retried_then_raised(serve: Any) -> None:
    script = Scripted([lambda: web.Response(body=b"not json")])
    async with make_client(await serve(script), Sleeps(), max_attempts=2) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.call("GetRecords", {})
    assert caught.value.code == "MalformedResponse"
    assert script.requests == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_retried_then_raised() -> None:
    sleeps = Sleeps()
    url = f"http://127.0.0.1:{_closed_port()}/"
    async with make_client(url, sleeps, max_attempts=3) as client:
        with pytest.raises(ConnectionFailedError) as caught:
            await client.call("ListStreams", {})
    assert len(sleeps.delays) == 2
    assert isinstance(caught.value.__cause__, HttpConnectError)
    assert "ListStreams: cannot reach http://127.0.0.1:" in str(caught.value)


async def test_read_timeout_is_a_connection_failure() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with make_client(
            str(server.make_url("/")), Sleeps(), max_attempts=1, read_timeout=0.1
        ) as client:
            with pytest.raises(
                ConnectionFailedError, match=r"no complete response .* within 0.1 s"
            ):
                await client.call("GetRecords", {})
    finally:
        await server.close()
