"""AwsJsonClient over https: the CA bundle botocore would use (AWS_CA_BUNDLE, ca_bundle)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.errors import ConfigError, ConnectionFailedError


@pytest.fixture
async def https_url(tls: tuple[ssl.SSLContext, Path]) -> AsyncIterator[str]:
    """An https endpoint on 127.0.0.1 answering every call with ``{"StreamSummaries": []}``."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"StreamSummaries": []})

    app = web.Application()
    app.router.add_post("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls[0])
    await site.start()
    yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def settings(url: str) -> AwsSettings:
    return AwsSettings(region="us-east-1", endpoint_url=url, max_attempts=1)


async def test_aws_ca_bundle_is_trusted(
    https_url: str, tls: tuple[ssl.SSLContext, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tls[1]))
    async with AwsJsonClient.create("dynamodbstreams", settings(https_url)) as client:
        assert await client.call("ListStreams", {}) == {"StreamSummaries": []}


async def test_without_the_bundle_the_certificate_is_refused(
    https_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    async with AwsJsonClient.create("dynamodbstreams", settings(https_url)) as client:
        with pytest.raises(ConnectionFailedError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.call("ListStreams", {})


def test_a_missing_ca_bundle_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.pem"
    monkeypatch.setenv("AWS_CA_BUNDLE", str(missing))
    with pytest.raises(ConfigError, match=r"cannot load the CA bundle '.*nope\.pem'"):
        AwsJsonClient.create("dynamodbstreams", settings("https://127.0.0.1:1"))
