"""Sink URLs: driver parameters kept, options split, secrets masked, unknown options named."""

from __future__ import annotations

from typing import Any

import pytest

from shardline.errors import ConfigError
from shardline.sinks.dynamodb import DynamoDBSink
from shardline.sinks.options import mask_url, parse_bool, parse_sink_url
from shardline.sinks.postgres import LIBPQ_PARAMETERS, PostgresSink
from shardline.sinks.registry import sink_from_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/app?table=t", "postgresql://app:***@db:5432/app?table=t"),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
        ("postgresql://app:p%40ss@db/app", "postgresql://app:***@db/app"),
        ("postgresql://app:a@b@db/app", "postgresql://app:***@db/app"),
        ("postgresql://db/app?password=hunter2&sslmode=require",
         "postgresql://db/app?password=***&sslmode=require"),
        ("dynamodb://T?secret=abc&region=eu-west-1", "dynamodb://T?secret=***&region=eu-west-1"),
        ("x://h/?Token=abc&api_key=k&SSLPASSWORD=z", "x://h/?Token=***&api_key=***&SSLPASSWORD=***"),
    ],
)  # fmt: skip
def test_mask_url_hides_passwords_and_secrets(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize("secret", ["s3cret", "hunter2", "abc"])
def test_a_sink_name_never_shows_the_secret(secret: str) -> None:
    sink = sink_from_url(f"postgresql://app:{secret}@db/app?table=t")
    assert secret not in sink.name
    assert secret not in repr(sink)
    with pytest.raises(ConfigError) as caught:  # a password goes in secret_env, not the query
        sink_from_url(f"postgresql://app@db/app?table=t&password={secret}")
    assert secret not in str(caught.value)


def test_driver_parameters_stay_in_the_url_and_options_are_split() -> None:
    options = parse_sink_url(
        "postgresql://app@db:5432/app?sslmode=require&table=orders&connect_timeout=5&mode=changelog",
        LIBPQ_PARAMETERS,
    )
    assert options.url == "postgresql://app@db:5432/app?sslmode=require&connect_timeout=5"
    assert options.scheme == "postgresql"
    assert options.options == {"table": "orders", "mode": "changelog"}


def test_driver_parameters_keep_their_encoding() -> None:
    url = "postgresql://db/app?application_name=a%26b&options=-c%20search_path%3Dx&table=t"
    options = parse_sink_url(url, LIBPQ_PARAMETERS)
    assert options.url == "postgresql://db/app?application_name=a%26b&options=-c%20search_path%3Dx"


def test_pipeline_keys_override_the_query() -> None:
    options = parse_sink_url(
        "postgresql://db/app?table=a&snapshot=false&sslmode=disable",
        LIBPQ_PARAMETERS,
        extra={"table": "b", "snapshot": True},
    )
    assert options.options == {"table": "b", "snapshot": True}
    assert options.url == "postgresql://db/app?sslmode=disable"


def test_a_driver_parameter_may_be_a_pipeline_key() -> None:
    options = parse_sink_url(
        "postgresql://db/app?sslmode=disable&table=a",
        LIBPQ_PARAMETERS,
        extra={"sslmode": "require"},
    )
    assert options.url == "postgresql://db/app?sslmode=require"
    assert options.options == {"table": "a"}
    sink = sink_from_url("postgresql://db/app?table=a", {"sslmode": "require"})
    assert isinstance(sink, PostgresSink) and sink.dsn == "postgresql://db/app?sslmode=require"


def test_sink_from_url_reads_the_common_options() -> None:
    sink = sink_from_url(
        "postgresql://db/app?table=o&snapshot=yes&mode=changelog",
        {"filter_criteria": [{"eventName": ["INSERT"]}]},
    )
    assert isinstance(sink, PostgresSink)
    assert (sink.snapshot, sink.mode, sink.table_option) == (True, "changelog", "o")
    assert sink.filter_criteria == [{"eventName": ["INSERT"]}]
    dynamo = sink_from_url("dynamodb://Target?region=eu-west-1&sequence_attribute=v")
    assert isinstance(dynamo, DynamoDBSink)
    assert (dynamo.table, dynamo.region, dynamo.sequence_attribute) == ("Target", "eu-west-1", "v")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pw@db/app?table=t&tabel=x",
        "dynamodb://T?regoin=eu-west-1",
    ],
)
def test_unknown_options_are_a_config_error_naming_the_sink(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sink_from_url(url)
    message = str(caught.value)
    assert "unknown option" in message
    assert "tabel" in message or "regoin" in message
    assert url.split("://")[0] in message and "pw" not in message
    assert "\n" not in message


def test_unknown_pipeline_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"sink postgresql://db/app.*unknown option\(s\) colums"):
        sink_from_url("postgresql://db/app", {"colums": "a"})


def test_unknown_scheme_and_no_url() -> None:
    with pytest.raises(ConfigError, match="unknown kind 'mysql'"):
        sink_from_url("mysql://db/app")
    with pytest.raises(ConfigError, match="not a URL"):
        parse_sink_url("just-a-name")


def test_secret_env_reads_the_variable() -> None:
    options = parse_sink_url(
        "postgresql://app@db/app?secret_env=PGPW", LIBPQ_PARAMETERS, environ={"PGPW": "pw"}
    )
    assert options.secret() == "pw"
    sink = sink_from_url("postgresql://app@db/app?secret_env=PGPW", environ={"PGPW": "x"})
    assert isinstance(sink, PostgresSink) and sink.password == "x"
    assert "x" not in sink.name.replace("postgresql", "")


def test_secret_env_missing_is_a_config_error(monkeypatch: Any) -> None:
    monkeypatch.setenv("SHARDLINE_TEST_PW", "from-the-process")
    options = parse_sink_url(
        "postgresql://app@db/app?secret_env=SHARDLINE_TEST_PW", LIBPQ_PARAMETERS, environ={}
    )
    with pytest.raises(ConfigError, match="SHARDLINE_TEST_PW is not set") as caught:
        options.secret()
    assert "sink postgresql://app@db/app" in str(caught.value)
    monkeypatch.delenv("SHARDLINE_TEST_PW")
    with pytest.raises(ConfigError, match=r"sink postgresql://app@db/app.*NOPE is not set"):
        sink_from_url("postgresql://app@db/app?secret_env=NOPE", environ={"OTHER": "1"})


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("postgresql://db/app?mode=mirror", "mode must be state or changelog"),
        ("postgresql://db/app?pool_size=0", "pool_size must be at least 1"),
        ("postgresql://db/app?pool_size=many", "option pool_size='many'"),
        ("postgresql://db/app?create=perhaps", "option create='perhaps'"),
        ("postgresql://db/app?lock_timeout=5 minutes", "lock_timeout must look like"),
        ("postgresql://db/app?columns=price:money", "option columns="),
        ("postgresql://db/app?mode=changelog&columns=price", "columns= works with mode=state"),
        ("dynamodb://T?concurrency=0", "concurrency must be at least 1"),
        ("dynamodb://?region=x", "name the target table"),
        ("postgresql://db/app?filter_criteria=[{", "filter_criteria is not valid JSON"),
    ],
)
def test_bad_option_values_are_config_errors(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sink_from_url(url)


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("No", False), ("1", True), (" off ", False)]
)
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value
    with pytest.raises(ValueError):
        parse_bool("maybe")
