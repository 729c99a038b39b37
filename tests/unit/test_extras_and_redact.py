"""extras.require (missing optional packages) and redact (secrets masked in text)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shardline.errors import ConfigError
from shardline.extras import MissingExtraError, install_hint, require
from shardline.redact import MASK, redact_text, redact_url

# --- extras -------------------------------------------------------------------------------


def test_require_returns_the_module() -> None:
    assert require("json", "local").__name__ == "json"


def test_require_names_the_extra_in_one_line() -> None:
    with pytest.raises(MissingExtraError) as caught:
        require("shardline_no_such_package.sub", "postgres", feature="the postgres sink")
    error = caught.value
    assert isinstance(error, ConfigError)
    assert str(error) == (
        "the postgres sink needs the 'postgres' extra (shardline_no_such_package is not"
        " installed): pip install 'shardline[postgres]'"
    )
    assert error.extra == "postgres" and "\n" not in str(error)


def test_a_missing_shardline_module_is_a_bug_not_an_extra() -> None:
    with pytest.raises(ModuleNotFoundError):
        require("shardline.no_such_module", "local")


def test_install_hint() -> None:
    assert install_hint("archive") == "pip install 'shardline[archive]'"


def _without_moto(tmp_path: Path) -> dict[str, str]:
    """An environment where ``import moto`` fails as if the extra were not installed."""
    stub = tmp_path / "moto"
    stub.mkdir()
    (stub / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'moto'\", name='moto')\n"
    )
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(tmp_path), str(root / "src")])
    return {**os.environ, "PYTHONPATH": path}


@pytest.mark.parametrize(
    "argv", [["local", "--port", "0"], ["demo", "--duration", "1"]], ids=["local", "demo"]
)
def test_commands_without_the_local_extra_print_one_line(tmp_path: Path, argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shardline.cli", *argv],
        env=_without_moto(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "shardline: error: the local stack needs the 'local' extra (moto is not installed):"
        " pip install 'shardline[local]'"
    ]


# --- redact -------------------------------------------------------------------------------

SECRET = "s3cr3t-Value-42"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:s3cr3t@proxy:3128", f"http://user:{MASK}@proxy:3128"),
        ("http://user:p%40ss@proxy:3128/", f"http://user:{MASK}@proxy:3128/"),
        ("http://:s3cr3t@proxy:3128", f"http://:{MASK}@proxy:3128"),
        ("http://user@proxy:3128", "http://user@proxy:3128"),
        ("https://dynamodb.us-east-1.amazonaws.com", "https://dynamodb.us-east-1.amazonaws.com"),
        (
            "postgresql://app:s3cr3t@db:5432/x?sslmode=require&password=s3cr3t",
            f"postgresql://app:{MASK}@db:5432/x?sslmode=require&password={MASK}",
        ),
        (
            "https://hooks.example/x?secret=abc&a=1&X-Amz-Signature=f00&api_key=k",
            f"https://hooks.example/x?secret={MASK}&a=1&X-Amz-Signature={MASK}&api_key={MASK}",
        ),
        ("http://user:s3cr3t@proxy:99999", f"http://user:{MASK}@proxy:99999"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_masks_known_secret_values() -> None:
    access_key, secret_key, token = (
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
        "FQ" * 60,
    )
    text = (
        f"proxy http://bob:{SECRET}@proxy.corp:3128 refused; dsn host=db password={SECRET} "
        f"user=app; aws_secret_access_key={secret_key} X-Amz-Security-Token: {token} "
        f"Credential={access_key}/20260101/us-east-1/dynamodb/aws4_request "
        f"webhook_secret='{SECRET}'"
    )
    masked = redact_text(text, known=[secret_key, token, None, "ab"])
    for value in (SECRET, access_key, secret_key, token):
        assert value not in masked
    assert "http://bob:***@proxy.corp:3128" in masked
    assert "host=db password=*** user=app" in masked
    assert "Credential=***" in masked
    assert redact_text(f"key id {access_key} rejected") == "key id AKIA*** rejected"


def test_redact_text_leaves_ordinary_text_alone() -> None:
    text = "GetRecords: cannot reach https://streams.dynamodb.eu-west-1.amazonaws.com: timed out"
    assert redact_text(text) == text


async def test_no_secret_reaches_logs_or_errors(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Known credentials and a proxy password, a call that fails through the proxy: no log
    line (DEBUG included), error text or repr carries any of them."""
    import logging
    import socket

    from botocore.credentials import Credentials

    from shardline.aws.client import AwsJsonClient
    from shardline.aws.endpoints import ResolvedEndpoint
    from shardline.aws.settings import AwsSettings
    from shardline.aws.transport.proxy import proxy_for
    from shardline.errors import ConnectionFailedError

    secrets = ["AKIAKNOWNKEY12345678", "kn0wn-secret-access-key", "kn0wn-session-token", SECRET]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://bob:{SECRET}@127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}/"
    aws = AwsJsonClient(
        "dynamodb",
        ResolvedEndpoint(url=url, region="us-east-1"),
        Credentials(*secrets[:3]),
        AwsSettings(max_attempts=2, base_backoff=0.0, max_backoff=0.0),
        proxy=proxy_for(url),
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectionFailedError) as caught:
        await aws.call("GetItem", {"TableName": "t", "Key": {"pk": {"S": "a"}}})
    await aws.close()
    printed = caplog.text + str(caught.value) + repr(aws)
    assert "bob:***@" in str(caught.value)
    for secret in secrets:
        assert secret not in printed
