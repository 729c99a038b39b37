"""User mistakes: one clear line on stderr, exit 2, no traceback."""

from __future__ import annotations

from typing import Any

import pytest

from shardline.cli import main
from tests.integration.support import create_stream_table, dynamodb, unique

pytestmark = pytest.mark.integration


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("shardline: error:")]


def test_processor_not_importable(local_stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(
        capsys, "run", "no_such_module:handle", "--table", "Orders",
        "--application", "app-x", "--endpoint-url", local_stack.endpoint_url,
    )  # fmt: skip
    assert code == 2
    assert "cannot import processor module 'no_such_module'" in err
    assert "Traceback" not in err


def test_unknown_table(local_stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(
        capsys, "run", "tests.integration.recorder_app:handle", "--table", "NoSuchTable",
        "--application", "app-x", "--endpoint-url", local_stack.endpoint_url,
    )  # fmt: skip
    assert code == 2
    assert len(error_lines(err)) == 1 and "NoSuchTable" in err
    assert "Traceback" not in err


def test_table_without_stream(local_stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    name = unique("nostream")
    dynamodb(local_stack.endpoint_url).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    code, err = run_cli(
        capsys, "status", "--table", name, "--application", "app-x",
        "--endpoint-url", local_stack.endpoint_url,
    )  # fmt: skip
    assert code == 2
    assert "stream" in error_lines(err)[0]


def test_bad_stream_arn(local_stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(
        capsys, "status", "--stream-arn", "arn:aws:kinesis:us-east-1:1:stream/x",
        "--application", "app-x", "--endpoint-url", local_stack.endpoint_url,
    )  # fmt: skip
    assert code == 2 and len(error_lines(err)) == 1


def test_unreachable_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(
        capsys, "status", "--table", "Orders", "--application", "app-x",
        "--endpoint-url", "http://127.0.0.1:9",
    )  # fmt: skip
    assert code == 2
    assert "cannot reach the endpoint" in err


def test_missing_credentials(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, err = run_cli(capsys, "status", "--table", "Orders", "--application", "app-x")
    assert code == 2
    assert "credentials" in err.lower()


def test_status_shows_leases_as_json(local_stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import orjson

    table = unique("status")
    create_stream_table(local_stack.endpoint_url, table)
    code = main(
        [
            "status", "--table", table, "--application", unique("app"),
            "--endpoint-url", local_stack.endpoint_url, "--json",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    payload = orjson.loads(out)
    assert payload["stream_arn"].startswith("arn:aws:dynamodb:")
    assert payload["shards"] == []


def test_lease_table_of_another_stream_is_refused(
    local_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    endpoint = local_stack.endpoint_url
    other, mine, app = unique("older"), unique("newer"), unique("app")
    create_stream_table(endpoint, other)
    arn = create_stream_table(endpoint, mine)
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")
    shard_id = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    client = dynamodb(endpoint)
    client.create_table(
        TableName=app,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(
        TableName=app,
        Item={
            "leaseKey": {"S": shard_id},
            "leaseCounter": {"N": "3"},
            "checkpoint": {"S": "TRIM_HORIZON"},
        },
    )
    code, err = run_cli(
        capsys, "run", "tests.integration.recorder_app:handle", "--table", other,
        "--application", app, "--endpoint-url", endpoint,
    )  # fmt: skip
    assert code == 2
    assert "holds leases of another stream" in error_lines(err)[0]


def test_python_dash_m_shardline_is_the_command() -> None:
    import subprocess
    import sys

    bad = subprocess.run(
        [sys.executable, "-m", "shardline", "run"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "give exactly one of --table or --stream-arn" in bad.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "shardline", "--help"], capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0 and "iam-policy" in helped.stdout
