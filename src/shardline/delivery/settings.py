"""Reading a :class:`DeliveryConfig` from CLI flags and TOML, with Lambda's names.

CLI flags are Lambda's names in kebab-case (``--batch-size``,
``--maximum-batching-window-in-seconds``, ...); TOML keys are the snake_case names,
in a ``[delivery]`` table or at the top level of the file. Flags override the file.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from typing import Any

from shardline.delivery.config import DeliveryConfig
from shardline.errors import ConfigError

_INT_FLAGS = (
    ("batch_size", "records per invocation, 1-10000 (default 100)"),
    ("maximum_retry_attempts", "-1 (forever, default) to 10000"),
    ("maximum_record_age_in_seconds", "-1 (default) or 60-604800"),
    ("parallelization_factor", "concurrent batches per shard, 1-10 (default 1)"),
    ("tumbling_window_in_seconds", "0-900; handler state is carried within a window"),
)
_BOOL_FLAGS = (
    ("bisect_batch_on_function_error", "split a failing batch in two and retry each half"),
    ("report_batch_item_failures", "honour {'batchItemFailures': [...]} from the handler"),
)
KEYS = frozenset(
    [name for name, _ in _INT_FLAGS + _BOOL_FLAGS]
    + ["maximum_batching_window_in_seconds", "on_failure", "filter_criteria"]
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_delivery_arguments(parser: argparse.ArgumentParser) -> None:
    """Add Lambda's controls, ``--lambda``, ``--metrics-port`` and ``--log-format``."""
    group = parser.add_argument_group("delivery controls (Lambda's names)")
    for name, text in _INT_FLAGS:
        group.add_argument(_flag(name), type=int, default=None, help=text)
    group.add_argument(
        "--maximum-batching-window-in-seconds", type=float, default=None, help="0-300 (default 0)"
    )
    for name, text in _BOOL_FLAGS:
        group.add_argument(_flag(name), action="store_true", default=None, help=text)
    group.add_argument(
        "--on-failure",
        help="failure destination: arn:aws:sqs:..., an SQS queue URL, arn:aws:sns:..., "
        "arn:aws:s3:::BUCKET, s3://BUCKET/PREFIX or file:///DIR",
    )
    group.add_argument("--on-failure-endpoint-url", help="endpoint for SQS/SNS/S3 (local stack)")
    group.add_argument(
        "--filter-criteria",
        action="append",
        default=None,
        help="a Lambda filter pattern (JSON), or {'Filters': [...]}; repeat to OR patterns",
    )
    group.add_argument("--delivery-config", help="TOML file with these settings")
    group.add_argument(
        "--lambda",
        dest="lambda_handler",
        metavar="MODULE:HANDLER",
        help="run an AWS Lambda handler(event, context) unchanged",
    )
    group.add_argument("--function-name", help="context.function_name in --lambda mode")
    group.add_argument("--metrics-port", type=int, help="serve /metrics and /health on this port")
    group.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
    group.add_argument("--log-format", choices=["text", "json"], default="text")


def delivery_from_args(args: argparse.Namespace) -> DeliveryConfig | None:
    """The delivery config the flags (and ``--delivery-config``) ask for, or ``None``.

    ``None`` means: no delivery control was given and no ``--lambda``, so the processor
    runs as it always did.
    """
    values: dict[str, Any] = {}
    path = getattr(args, "delivery_config", None)
    if path:
        values.update(_settings_from_toml(path))
    for name in KEYS:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = _filters_from_flags(value) if name == "filter_criteria" else value
    if not values and not getattr(args, "lambda_handler", None):
        return None
    return DeliveryConfig(**values)


def delivery_from_toml(path: str) -> DeliveryConfig:
    """Read a TOML file (``[delivery]`` table or top-level keys with Lambda's names)."""
    return DeliveryConfig(**_settings_from_toml(path))


def _settings_from_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read delivery config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"delivery config {path} is not valid TOML: {exc}") from exc
    table = document.get("delivery", document)
    if not isinstance(table, dict):
        raise ConfigError(f"delivery config {path}: [delivery] must be a table")
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ConfigError(
            f"delivery config {path}: unknown key(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(KEYS))})"
        )
    return dict(table)


def _filters_from_flags(values: list[str]) -> list[Any]:
    patterns: list[Any] = []
    for text in values:
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--filter-criteria is not valid JSON: {exc}") from exc
        if isinstance(loaded, dict) and "Filters" in loaded:
            patterns.extend(f.get("Pattern") for f in loaded["Filters"] if isinstance(f, dict))
        else:
            patterns.append(loaded)
    return patterns
