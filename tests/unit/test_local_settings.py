"""The local stack's settings, declared once (pure), and the places that read them."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from shardline.local.args import register_local_arguments
from shardline.local.settings import LOCAL, LocalStackSettings

ROOT = Path(__file__).resolve().parents[2]


def test_the_defaults() -> None:
    assert LocalStackSettings() == LOCAL
    assert (LOCAL.host, LOCAL.port, LOCAL.region) == ("127.0.0.1", 4566, "us-east-1")
    assert LOCAL.account_id == "123456789012"
    assert LOCAL.endpoint_url == "http://127.0.0.1:4566"


def test_settings_are_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        LOCAL.port = 1  # type: ignore[misc]


def test_endpoint_url_follows_host_and_port() -> None:
    assert replace(LOCAL, host="0.0.0.0", port=1234).endpoint_url == "http://0.0.0.0:1234"


def test_env_carries_the_dummy_credentials_and_the_region() -> None:
    settings = LocalStackSettings(region="eu-west-1", access_key_id="a", secret_access_key="s")
    assert settings.credentials_env() == {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}
    assert settings.env() == {
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "eu-west-1",
    }


def test_child_env_keeps_credentials_given_and_sets_the_region() -> None:
    given = {"AWS_ACCESS_KEY_ID": "mine", "AWS_REGION": "ap-south-1", "PATH": "/bin"}
    env = LOCAL.child_env(given)
    assert env == {
        "AWS_ACCESS_KEY_ID": "mine",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "PATH": "/bin",
    }
    assert given["AWS_REGION"] == "ap-south-1"  # not changed in place


def test_setdefault_credentials_fills_only_what_is_missing() -> None:
    environ = {"AWS_SECRET_ACCESS_KEY": "mine"}
    LOCAL.setdefault_credentials(environ)
    assert environ == {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "mine"}


def test_aws_settings_point_at_the_stack() -> None:
    aws = replace(LOCAL, port=9).aws_settings(max_attempts=2)
    assert (aws.region, aws.endpoint_url) == ("us-east-1", "http://127.0.0.1:9")
    assert aws.max_attempts == 2


def test_the_cli_flags_default_to_the_settings() -> None:
    parser = argparse.ArgumentParser()
    register_local_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.region) == (LOCAL.host, LOCAL.port, LOCAL.region)


def test_an_embedded_stack_defaults_to_the_settings_on_a_free_port() -> None:
    from shardline.local.server import LocalStack

    stack = LocalStack()  # not started: nothing is bound
    assert stack.client_settings == replace(LOCAL, port=0)
    assert stack.endpoint_url == "http://127.0.0.1:0"
    parameters = inspect.signature(LocalStack).parameters
    assert parameters["port"].default == 0


def test_the_account_is_motos_default() -> None:
    core = pytest.importorskip("moto.core")
    assert LOCAL.account_id == core.DEFAULT_ACCOUNT_ID


def test_the_docs_name_the_same_defaults() -> None:
    text = (ROOT / "docs" / "local-stack.md").read_text()
    flags = f"[--host {LOCAL.host}] [--port {LOCAL.port}] [--region {LOCAL.region}]"
    assert flags in text
    assert f"moto's default account `{LOCAL.account_id}`" in text
