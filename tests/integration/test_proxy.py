"""AWS calls through a real HTTP proxy (proxy.py, a dev dependency) started by the tests:
an open one, one that requires credentials, one that refuses, and one that is not there.

The upstream "AWS" is a small aiohttp app (http and https) that answers every call with a
JSON object and records the requests it got; the proxy's access log shows what it carried.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.cli import main
from shardline.errors import ConnectionFailedError

pytestmark = pytest.mark.integration

USER, PASSWORD = "shard", "pr0xy-s3cret"
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY")


@dataclass
class Proxy:
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials}127.0.0.1:{self.port}"

    def carried(self, target: str) -> bool:
        """Whether the access log shows a request to (or a tunnel to) ``target``."""
        deadline = time.monotonic() + 10  # the log line may be written just after the answer
        while time.monotonic() < deadline:
            if target in self.log.read_text(errors="replace"):
                return True
            time.sleep(0.05)
        return False


def start_proxy(folder: Path, *extra: str) -> Iterator[Proxy]:
    folder.mkdir(parents=True, exist_ok=True)
    port_file, log = folder / "port", folder / "proxy.log"
    command = [
        sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
        "--port-file", str(port_file), "--num-workers", "1", "--num-acceptors", "1", *extra,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):  # a minute's hang guard
            if port_file.exists() and port_file.read_text().strip():
                break
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
        port = int(port_file.read_text())
        _wait_listening(port)
        yield Proxy(port, log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_listening(port: int) -> None:
    for _ in range(600):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"proxy on port {port} never listened")


@pytest.fixture(scope="module")
def open_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    yield from start_proxy(tmp_path_factory.mktemp("open"))


@pytest.fixture(scope="module")
def auth_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    yield from start_proxy(tmp_path_factory.mktemp("auth"), "--basic-auth", f"{USER}:{PASSWORD}")


@pytest.fixture(scope="module")
def refusing_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    yield from start_proxy(
        tmp_path_factory.mktemp("refusing"),
        "--plugins", "proxy.plugin.FilterByUpstreamHostPlugin",
        "--filtered-upstream-hosts", "127.0.0.1,localhost",
    )  # fmt: skip


@dataclass
class Upstream:
    http: str
    https: str
    requests: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
async def upstream(tls: tuple[ssl.SSLContext, Path]) -> AsyncIterator[Upstream]:
    """An "AWS" on 127.0.0.1 over http and https, answering ``{"TableNames": []}``."""
    seen: list[dict[str, str]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response({"TableNames": []})

    app = web.Application()
    app.router.add_post("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    plain = web.TCPSite(runner, "127.0.0.1", 0)
    await plain.start()
    secure = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls[0])
    await secure.start()
    ports = [address[1] for address in runner.addresses]
    yield Upstream(f"http://127.0.0.1:{ports[0]}", f"https://127.0.0.1:{ports[1]}", seen)
    await runner.cleanup()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tls: tuple[ssl.SSLContext, Path]) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDPROXYTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tls[1]))
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def client(url: str, **settings: Any) -> AwsJsonClient:
    return AwsJsonClient.create(
        "dynamodb", AwsSettings(region="us-east-1", endpoint_url=url, **settings)
    )


def hostport(url: str) -> str:
    return url.split("://", 1)[1]


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_calls_go_through_the_proxy(
    monkeypatch: pytest.MonkeyPatch, open_proxy: Proxy, upstream: Upstream, scheme: str
) -> None:
    monkeypatch.setenv(f"{scheme.upper()}_PROXY", open_proxy.url())
    url = getattr(upstream, scheme)
    async with client(url) as aws:
        assert aws.proxy is not None
        assert await aws.call("ListTables", {}) == {"TableNames": []}
        assert await aws.call("ListTables", {}) == {"TableNames": []}
    assert open_proxy.carried(hostport(url))
    assert upstream.requests[0]["x-amz-target"] == "DynamoDB_20120810.ListTables"
    assert "authorization" in upstream.requests[0]  # the SigV4 signature got through


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_proxy_credentials_from_the_url(
    monkeypatch: pytest.MonkeyPatch, auth_proxy: Proxy, upstream: Upstream, scheme: str
) -> None:
    monkeypatch.setenv(f"{scheme.upper()}_PROXY", auth_proxy.url(f"{USER}:{PASSWORD}@"))
    async with client(getattr(upstream, scheme)) as aws:
        assert await aws.call("ListTables", {}) == {"TableNames": []}
    assert "proxy-authorization" not in upstream.requests[0]  # for the proxy only


@pytest.mark.parametrize("credentials", ["", f"{USER}:wrong-{PASSWORD}@"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_proxy_that_wants_credentials_is_named_without_them(
    monkeypatch: pytest.MonkeyPatch,
    auth_proxy: Proxy,
    upstream: Upstream,
    scheme: str,
    credentials: str,
) -> None:
    monkeypatch.setenv(f"{scheme.upper()}_PROXY", auth_proxy.url(credentials))
    async with client(getattr(upstream, scheme)) as aws:
        with pytest.raises(ConnectionFailedError) as caught:
            await aws.call("ListTables", {})
    message = str(caught.value)
    assert f"the proxy http://{'shard:***@' if credentials else ''}127.0.0.1:{auth_proxy.port}" in (
        message
    )
    assert "refused" in message and "407" in message
    assert PASSWORD not in message
    assert not caught.value.retriable
    assert not upstream.requests


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_refusing_proxy_is_named(
    monkeypatch: pytest.MonkeyPatch, refusing_proxy: Proxy, upstream: Upstream, scheme: str
) -> None:
    monkeypatch.setenv(f"{scheme.upper()}_PROXY", refusing_proxy.url())
    async with client(getattr(upstream, scheme), max_attempts=2) as aws:
        with pytest.raises(ConnectionFailedError) as caught:
            await aws.call("ListTables", {})
    assert f"proxy http://127.0.0.1:{refusing_proxy.port}" in str(caught.value)
    assert not upstream.requests


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unreachable_proxy_is_named_with_the_password_masked(
    monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    port = dead_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://{USER}:{PASSWORD}@127.0.0.1:{port}")
    async with client(upstream.https, max_attempts=2) as aws:
        with pytest.raises(ConnectionFailedError) as caught:
            await aws.call("ListTables", {})
    message = str(caught.value)
    assert f"cannot connect to the proxy http://{USER}:***@127.0.0.1:{port}" in message
    assert PASSWORD not in message and caught.value.retriable


async def test_no_proxy_goes_direct(monkeypatch: pytest.MonkeyPatch, upstream: Upstream) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port()}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    async with client(upstream.http) as aws:
        assert aws.proxy is None
        assert await aws.call("ListTables", {}) == {"TableNames": []}


def test_cli_names_the_unreachable_proxy_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = dead_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://{USER}:{PASSWORD}@127.0.0.1:{port}")
    code = main(
        ["status", "--table", "T", "--application", "a", "--region", "us-east-1",
         "--endpoint-url", f"http://127.0.0.1:{dead_port()}"]
    )  # fmt: skip
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("shardline: error:")]
    assert code == 2 and len(lines) == 1, err
    assert f"proxy http://{USER}:***@127.0.0.1:{port}" in lines[0]
    assert "HTTP_PROXY" in lines[0]
    assert PASSWORD not in err and "Traceback" not in err


def test_proxy_py_is_a_real_server() -> None:
    """The proxy is the PyPI package, not a fake (a guard against a stub on the path)."""
    import proxy

    assert os.path.isdir(os.path.dirname(proxy.__file__))
