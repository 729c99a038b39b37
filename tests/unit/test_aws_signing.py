"""Our SigV4 signature equals the one botocore's own client computes for the same inputs.

No machine here reaches AWS, so this is the check that real AWS would accept our requests:
same credentials, same (frozen) time, same body -> same signed headers.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Iterator
from typing import Any
from unittest import mock

import botocore.session
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.credentials import Credentials, ReadOnlyCredentials

from shardline.aws.client import AwsJsonClient
from shardline.aws.endpoints import ResolvedEndpoint
from shardline.aws.settings import AwsSettings
from shardline.aws.signing import signed_headers

FROZEN = datetime.datetime(2024, 1, 2, 3, 4, 5)
SIGNED = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Target", "Content-Type")
STREAM_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/things/stream/2024-01-01T00:00:00.000"

CALLS = [
    ("dynamodbstreams", "GetRecords", {"ShardIterator": "x" * 40, "Limit": 1000}),
    ("dynamodbstreams", "DescribeStream", {"StreamArn": STREAM_ARN, "Limit": 100}),
    ("dynamodbstreams", "ListStreams", {"TableName": "things"}),
    ("dynamodb", "GetItem", {"TableName": "leases", "Key": {"leaseKey": {"S": "shardId-1"}}}),
    ("dynamodb", "DescribeTable", {"TableName": "leases"}),
]


class _Stop(Exception):
    """Stops botocore's request after signing: nothing is sent."""


@pytest.fixture(autouse=True)
def frozen_time() -> Iterator[None]:
    with mock.patch("botocore.auth.get_current_datetime", return_value=FROZEN):
        yield


def _botocore_request(
    service: str,
    operation: str,
    params: dict[str, Any],
    token: str | None,
    *,
    endpoint_url: str | None = None,
    body: bytes | None = None,
) -> Any:
    """The request botocore's client sends; ``body`` (if given) replaces its JSON before signing."""
    client = botocore.session.Session().create_client(
        service,
        region_name="eu-west-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
    )
    service_id = client.meta.service_model.service_id.hyphenize()
    captured: list[Any] = []

    def replace_body(request: Any, **_: Any) -> None:
        if body is not None:
            request.data = body

    def capture(request: Any, **_: Any) -> None:
        captured.append(request)
        raise _Stop

    client.meta.events.register(f"before-sign.{service_id}.{operation}", replace_body)
    client.meta.events.register(f"before-send.{service_id}.{operation}", capture)
    method = {v: k for k, v in client.meta.method_to_api_mapping.items()}[operation]
    with pytest.raises(_Stop):
        getattr(client, method)(**params)
    return captured[0]


def _frozen(token: str | None) -> ReadOnlyCredentials:
    return ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _target(service: str, operation: str) -> str:
    prefix = "DynamoDB_20120810" if service == "dynamodb" else "DynamoDBStreams_20120810"
    return f"{prefix}.{operation}"


@pytest.mark.parametrize("token", ["session-token-123", None])
@pytest.mark.parametrize(("service", "operation", "params"), CALLS)
def test_same_body_same_signature(
    service: str, operation: str, params: dict[str, Any], token: str | None
) -> None:
    theirs = _botocore_request(service, operation, params, token)
    ours = signed_headers(
        theirs.url, _target(service, operation), theirs.body, _frozen(token), "eu-west-1"
    )
    for name in SIGNED:
        assert ours.get(name) == (
            _text(theirs.headers[name]) if name in theirs.headers else None
        ), name


@pytest.mark.parametrize(("service", "operation", "params"), CALLS)
def test_orjson_body_signed_by_botocore_matches(
    service: str, operation: str, params: dict[str, Any]
) -> None:
    """The same AWSRequest, signed both ways, with the body our client really sends."""
    body = orjson.dumps(params)
    theirs = _botocore_request(service, operation, params, "tok", body=body)
    ours = signed_headers(
        theirs.url, _target(service, operation), body, _frozen("tok"), "eu-west-1"
    )
    assert theirs.body == body
    assert ours["Authorization"] == _text(theirs.headers["Authorization"])


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[TestServer, list[web.Request], list[bytes]]]:
    """Records every request and answers ``{}``."""
    requests: list[web.Request] = []
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        requests.append(request)
        bodies.append(await request.read())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, requests, bodies
    await server.close()


async def test_wire_request_carries_botocores_signature(
    echo_server: tuple[TestServer, list[web.Request], list[bytes]],
) -> None:
    """What aiohttp puts on the wire (Host included) is what botocore would have signed."""
    server, requests, bodies = echo_server
    url = str(server.make_url("/"))
    params = {"ShardIterator": "i" * 50, "Limit": 1000}
    client = AwsJsonClient(
        "dynamodbstreams",
        ResolvedEndpoint(url=url, region="eu-west-1"),
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "tok"),
        AwsSettings(),
    )
    async with client:
        assert await client.call("GetRecords", params) == {}

    sent = requests[0]
    theirs = _botocore_request(
        "dynamodbstreams",
        "GetRecords",
        params,
        "tok",
        endpoint_url=url.rstrip("/"),
        body=bodies[0],
    )
    assert sent.headers["Host"] == server.make_url("/").raw_authority
    for name in SIGNED:
        assert sent.headers[name] == _text(theirs.headers[name]), name
    assert orjson.loads(bodies[0]) == params
