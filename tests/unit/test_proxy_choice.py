"""proxy_for: which proxy (if any) an endpoint's requests go through, as botocore decides."""

from __future__ import annotations

import base64

import botocore.httpsession
import botocore.utils
import pytest

from shardline.aws.transport.proxy import proxy_for

AWS = "https://dynamodb.us-east-1.amazonaws.com/"
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def botocores_choice(url: str) -> str | None:
    proxies = botocore.utils.get_environ_proxies(url)
    choice: str | None = botocore.httpsession.ProxyConfiguration(proxies=proxies).proxy_url_for(url)
    return choice


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({}, AWS, None),
        ({"HTTPS_PROXY": "proxy.corp:3128"}, AWS, "http://proxy.corp:3128"),
        ({"HTTPS_PROXY": "//proxy.corp:3128"}, AWS, "http://proxy.corp:3128"),
        ({"HTTPS_PROXY": "https://proxy.corp:3129"}, AWS, "https://proxy.corp:3129"),
        ({"HTTP_PROXY": "http://p:1"}, AWS, None),  # https endpoints use HTTPS_PROXY
        ({"HTTP_PROXY": "http://p:1"}, "http://127.0.0.1:4566/", "http://p:1"),
        ({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"}, AWS, "http://lower:2"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "amazonaws.com"}, AWS, None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".amazonaws.com"}, AWS, None),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "*"}, AWS, None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com, *"}, AWS, "http://p:1"),  # sic
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"}, AWS, "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "zonaws.com"}, AWS, "http://p:1"),
        (
            {"HTTP_PROXY": "http://p:1", "NO_PROXY": "127.0.0.1:4566"},
            "http://127.0.0.1:4566/",
            None,
        ),
        (
            {"HTTP_PROXY": "http://p:1", "NO_PROXY": "127.0.0.1:4566"},
            "http://127.0.0.1:8000/",
            "http://p:1",
        ),
        (  # CGI: HTTP_PROXY may come from a request header, so it is not trusted
            {"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"},
            "http://127.0.0.1:4566/",
            None,
        ),
    ],
)
def test_proxy_for_follows_botocore(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, expected: str | None
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    route = proxy_for(url)
    assert (route.url if route else None) == expected
    assert (route.url if route else None) == botocores_choice(url)


def test_proxy_credentials_become_a_header_and_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://us%40er:p%40ss-w0rd@proxy.corp:3128")
    route = proxy_for(AWS)
    assert route is not None
    assert route.url == "http://proxy.corp:3128"
    token = base64.b64encode(b"us@er:p@ss-w0rd").decode()
    assert route.headers == {"Proxy-Authorization": f"Basic {token}"}
    assert route.display == "http://us%40er:***@proxy.corp:3128"
    assert "w0rd" not in repr(route.display)


def test_a_user_without_a_password_sends_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://someone@proxy.corp:3128")
    route = proxy_for(AWS)
    assert route is not None and route.headers == {}
