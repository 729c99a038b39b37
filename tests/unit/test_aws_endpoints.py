"""Endpoint, region and credential resolution equal botocore's, for the settings users set.

"botocore's" here is the URL botocore's own client really sends a request to (captured
before sending), not ``client.meta.endpoint_url``, which differs for some settings.
Everything is read from the environment at ``create`` time; each test sets its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from shardline.aws.client import AwsJsonClient
from shardline.aws.settings import AwsSettings
from shardline.errors import ConfigError, CredentialsError

SERVICES = ["dynamodb", "dynamodbstreams"]
REGIONS = ["us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"]
VARIANTS: list[dict[str, str]] = [
    {},
    {"AWS_USE_FIPS_ENDPOINT": "true"},
    {"AWS_USE_DUALSTACK_ENDPOINT": "true"},
    {"AWS_USE_FIPS_ENDPOINT": "true", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS setting from the machine leaks in; static test credentials only."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRET")


class _Sent(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def botocore_url(service: str, region: str | None = None) -> str:
    """The URL botocore's own client sends ListTables/ListStreams to."""
    client = botocore.session.Session().create_client(service, region_name=region)
    service_id = client.meta.service_model.service_id.hyphenize()

    def capture(request: Any, **_: Any) -> None:
        raise _Sent(request.url)

    operation = "ListTables" if service == "dynamodb" else "ListStreams"
    client.meta.events.register(f"before-send.{service_id}.{operation}", capture)
    with pytest.raises(_Sent) as sent:
        client.list_tables() if service == "dynamodb" else client.list_streams()
    return sent.value.url.rstrip("/")


@pytest.mark.parametrize("variant", VARIANTS, ids=["plain", "fips", "dualstack", "fips+dual"])
@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("service", SERVICES)
def test_endpoint_equals_botocore(
    service: str, region: str, variant: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in variant.items():
        monkeypatch.setenv(name, value)
    client = AwsJsonClient.create(service, AwsSettings(region=region))
    assert client.endpoint_url == botocore_url(service, region)
    assert client.region == region


def test_china_partition_uses_the_china_domain() -> None:
    client = AwsJsonClient.create("dynamodbstreams", AwsSettings(region="cn-north-1"))
    assert client.endpoint_url == "https://streams.dynamodb.cn-north-1.amazonaws.com.cn"


def test_fips_from_the_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[default]\nuse_fips_endpoint = true\n")
    client = AwsJsonClient.create("dynamodb", AwsSettings(region="us-east-1"))
    assert client.endpoint_url == "https://dynamodb-fips.us-east-1.amazonaws.com"


def test_service_specific_endpoint_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://streams.local:4567")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://ddb.local:4566")
    settings = AwsSettings(region="eu-west-1")
    assert AwsJsonClient.create("dynamodbstreams", settings).endpoint_url == (
        "http://streams.local:4567"
    )
    assert AwsJsonClient.create("dynamodb", settings).endpoint_url == "http://ddb.local:4566"
    assert botocore_url("dynamodbstreams", "eu-west-1") == "http://streams.local:4567"


def test_global_endpoint_env_serves_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    for service in SERVICES:
        client = AwsJsonClient.create(service, AwsSettings(region="us-east-1"))
        assert client.endpoint_url == "http://127.0.0.1:5000"


def test_settings_endpoints_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://env:1")
    settings = AwsSettings(
        region="us-east-1",
        endpoint_url="http://both:2",
        dynamodb_endpoint_url="http://leases:3",
    )
    assert AwsJsonClient.create("dynamodbstreams", settings).endpoint_url == "http://both:2"
    assert AwsJsonClient.create("dynamodb", settings).endpoint_url == "http://leases:3"
    streams_only = AwsSettings(region="us-east-1", streams_endpoint_url="http://stream:4")
    assert AwsJsonClient.create("dynamodbstreams", streams_only).endpoint_url == "http://stream:4"


@pytest.mark.parametrize("name", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_region_from_the_environment(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, "eu-central-1")
    client = AwsJsonClient.create("dynamodbstreams", AwsSettings())
    assert client.region == "eu-central-1"
    assert client.endpoint_url == "https://streams.dynamodb.eu-central-1.amazonaws.com"


def test_aws_region_wins_over_aws_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert AwsJsonClient.create("dynamodb", AwsSettings()).region == "eu-west-2"
    assert AwsJsonClient.create("dynamodb", AwsSettings(region="ap-south-1")).region == (
        "ap-south-1"
    )


def test_profile_supplies_region_and_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (tmp_path / "config").write_text("[profile team]\nregion = ap-northeast-1\n")
    (tmp_path / "credentials").write_text(
        "[team]\naws_access_key_id = AKTEAM\naws_secret_access_key = S\n"
    )
    client = AwsJsonClient.create("dynamodb", AwsSettings(profile="team"))
    assert client.region == "ap-northeast-1"
    assert client._credentials.get_frozen_credentials().access_key == "AKTEAM"


def test_account_id_does_not_switch_to_account_endpoints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Account-ID endpoints follow each request's ARN; one client URL cannot, so regional."""
    monkeypatch.setenv("AWS_ACCOUNT_ID", "123456789012")
    client = AwsJsonClient.create("dynamodbstreams", AwsSettings(region="us-east-1"))
    assert client.endpoint_url == "https://streams.dynamodb.us-east-1.amazonaws.com"


def test_no_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no AWS region"):
        AwsJsonClient.create("dynamodb", AwsSettings())


def test_unknown_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nope"):
        AwsJsonClient.create("dynamodb", AwsSettings(region="us-east-1", profile="nope"))


def test_no_credentials_is_a_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CredentialsError, match="no AWS credentials") as caught:
        AwsJsonClient.create("dynamodbstreams", AwsSettings(region="us-east-1"))
    assert "\n" not in str(caught.value)


def test_unknown_service_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown service"):
        AwsJsonClient.create("kinesis", AwsSettings(region="us-east-1"))
