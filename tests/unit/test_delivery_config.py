"""DeliveryConfig validation, CLI flags, TOML, destinations, wrap_processor."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from shardline.delivery import (
    DeliveryConfig,
    add_delivery_arguments,
    delivery_from_args,
    delivery_from_toml,
    parse_destination,
    wrap_processor,
)
from shardline.delivery.destinations import make_destination
from shardline.delivery.processor import DeliveryProcessor
from shardline.errors import ConfigError
from shardline.processor import FunctionProcessor, RecordProcessor


def test_defaults_are_lambdas() -> None:
    config = DeliveryConfig()
    assert (config.batch_size, config.maximum_batching_window_in_seconds) == (100, 0)
    assert config.maximum_retry_attempts == -1 and config.maximum_record_age_in_seconds == -1
    assert config.parallelization_factor == 1 and config.on_failure is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 0}, "batch_size must be 1..10000"),
        ({"batch_size": 10_001}, "batch_size"),
        ({"maximum_batching_window_in_seconds": 301}, "maximum_batching_window_in_seconds"),
        ({"maximum_retry_attempts": -2}, "maximum_retry_attempts"),
        ({"maximum_retry_attempts": 10_001}, "maximum_retry_attempts"),
        ({"maximum_record_age_in_seconds": 59, "on_failure": "file:///d"}, "-1 or 60..604800"),
        ({"maximum_record_age_in_seconds": 604_801, "on_failure": "file:///d"}, "604800"),
        ({"parallelization_factor": 11}, "parallelization_factor"),
        ({"tumbling_window_in_seconds": 901}, "tumbling_window_in_seconds"),
        ({"on_failure": "kafka://topic"}, "unknown on_failure destination"),
        ({"on_failure": "arn:aws:sqs:us-east-1:queue"}, "arn:aws:sqs:REGION:ACCOUNT:QUEUE"),
        ({"maximum_retry_attempts": 3}, "need an on_failure destination"),
        ({"batch_size": "10"}, "must be a number"),
        ({"tumbling_window_in_seconds": 60, "parallelization_factor": 2}, "parallelization"),
        ({"filter_criteria": {"eventName": "INSERT"}}, "arrays of matchers"),
    ],
)
def test_bad_values_fail_with_one_clear_line(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        DeliveryConfig(**changes)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("uri", "kind", "target"),
    [
        ("arn:aws:sqs:eu-west-1:123456789012:dlq", "sqs", "arn:aws:sqs:eu-west-1:123456789012:dlq"),
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/dlq", "sqs",
         "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq"),
        ("arn:aws:sns:us-east-1:1234:alerts", "sns", "arn:aws:sns:us-east-1:1234:alerts"),
        ("arn:aws:s3:::my-bucket", "s3", "my-bucket"),
        ("s3://my-bucket/some/prefix", "s3", "my-bucket"),
        ("file:///var/lib/dlq", "file", "/var/lib/dlq"),
        ("arn:aws-cn:sqs:cn-north-1:1234:dlq", "sqs", "arn:aws-cn:sqs:cn-north-1:1234:dlq"),
    ],
)  # fmt: skip
def test_destination_forms(uri: str, kind: str, target: str) -> None:
    spec = parse_destination(uri)
    assert (spec.kind, spec.target) == (kind, target)


def test_s3_prefix_and_sqs_region() -> None:
    assert parse_destination("s3://b/p/q").prefix == "p/q/"
    assert parse_destination("https://sqs.eu-west-1.amazonaws.com/1/q").region == "eu-west-1"


def test_destination_clients_share_a_session_and_honour_aws_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    s3 = make_destination("s3://bucket/prefix")  # no region in the URI
    clients = s3._clients  # type: ignore[attr-defined]
    assert clients.get("s3").meta.region_name == "eu-west-2"
    assert clients.get("sqs").meta.region_name == "eu-west-2"
    assert clients.get("s3") is clients.get("s3")
    sqs = make_destination("https://sqs.eu-central-1.amazonaws.com/1/q", region="us-east-1")
    assert sqs._clients.get("sqs").meta.region_name == "eu-central-1"  # type: ignore[attr-defined]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_delivery_arguments(parser)
    return parser.parse_args(argv)


def test_no_flags_mean_no_delivery_wrapper() -> None:
    assert delivery_from_args(parse()) is None


def test_flags_with_lambdas_names() -> None:
    config = delivery_from_args(parse(
        "--batch-size", "500", "--maximum-batching-window-in-seconds", "2.5",
        "--maximum-retry-attempts", "3", "--maximum-record-age-in-seconds", "3600",
        "--bisect-batch-on-function-error", "--report-batch-item-failures",
        "--parallelization-factor", "4", "--on-failure", "file:///tmp/dlq",
        "--filter-criteria", '{"eventName": ["INSERT"]}',
        "--filter-criteria", '{"Filters": [{"Pattern": "{\\"eventName\\": [\\"MODIFY\\"]}"}]}',
    ))  # fmt: skip
    assert config is not None
    assert config.batch_size == 500 and config.maximum_batching_window_in_seconds == 2.5
    assert config.bisect_batch_on_function_error and config.report_batch_item_failures
    assert config.parallelization_factor == 4 and config.on_failure == "file:///tmp/dlq"
    assert config.filters.matches({"eventName": "MODIFY"})
    assert not config.filters.matches({"eventName": "REMOVE"})


def test_lambda_flag_alone_uses_lambdas_defaults() -> None:
    args = parse("--lambda", "app:handler", "--metrics-port", "9100", "--log-format", "json")
    assert delivery_from_args(args) == DeliveryConfig()
    assert (args.lambda_handler, args.metrics_port, args.log_format) == (
        "app:handler",
        9100,
        "json",
    )


def test_toml_and_flags_override(tmp_path: Any) -> None:
    path = tmp_path / "delivery.toml"
    path.write_text(
        '[delivery]\nbatch_size = 50\nmaximum_retry_attempts = 2\non_failure = "file:///tmp/d"\n'
        'filter_criteria = [{ eventName = ["INSERT"] }]\n'
    )
    assert delivery_from_toml(str(path)).batch_size == 50
    config = delivery_from_args(parse("--delivery-config", str(path), "--batch-size", "7"))
    assert config is not None and config.batch_size == 7 and config.maximum_retry_attempts == 2
    assert config.filters.matches({"eventName": "INSERT"})


def test_toml_errors(tmp_path: Any) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[delivery]\nbatchsize = 5\n")
    with pytest.raises(ConfigError, match=r"unknown key.*batchsize"):
        delivery_from_toml(str(path))
    path.write_text("[delivery\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        delivery_from_toml(str(path))
    with pytest.raises(ConfigError, match="cannot read"):
        delivery_from_toml(str(tmp_path / "missing.toml"))


def test_wrap_processor() -> None:
    def handle(records: list[Any]) -> None: ...

    assert isinstance(wrap_processor(handle, None)(), FunctionProcessor)
    assert isinstance(wrap_processor(handle, DeliveryConfig(), stream_arn="a")(), DeliveryProcessor)
    assert isinstance(wrap_processor(handle, None, True, stream_arn="a")(), DeliveryProcessor)

    class P(RecordProcessor):
        pass

    with pytest.raises(ConfigError, match="not the processor class"):
        wrap_processor(P, DeliveryConfig())
