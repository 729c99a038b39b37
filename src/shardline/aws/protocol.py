"""The AWS JSON 1.0 protocol of DynamoDB and DynamoDB Streams: the constants both ends use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from shardline.errors import ConfigError

__all__ = ["JSON_CONTENT_TYPE", "SIGNING_NAME", "TARGET_PREFIXES", "USER_AGENT", "check_service"]

JSON_CONTENT_TYPE: Final = "application/x-amz-json-1.0"
SIGNING_NAME: Final = "dynamodb"
"""Both DynamoDB and DynamoDB Streams sign as ``dynamodb``."""
TARGET_PREFIXES: Final[Mapping[str, str]] = {
    "dynamodb": "DynamoDB_20120810",
    "dynamodbstreams": "DynamoDBStreams_20120810",
}
USER_AGENT: Final = "shardline/0.1 (aws-json-1.0)"


def check_service(service: str) -> None:
    """ConfigError unless ``service`` is one this client speaks (a :data:`TARGET_PREFIXES` key)."""
    if service not in TARGET_PREFIXES:
        raise ConfigError(f"unknown service {service!r}: expected one of {sorted(TARGET_PREFIXES)}")
