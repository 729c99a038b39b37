"""A sink from its URL: the scheme picks the sink, the query (or pipeline keys) its options."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from shardline.errors import ConfigError
from shardline.imports import import_attribute
from shardline.sinks.base import Sink
from shardline.sinks.options import SinkOptions, parse_bool, parse_sink_url

__all__ = ["SCHEMES", "load_callable", "sink_from_url"]


def _postgres(options: SinkOptions) -> Sink:
    from shardline.sinks.postgres import PostgresSink

    return PostgresSink.from_options(options)


def _dynamodb(options: SinkOptions) -> Sink:
    from shardline.sinks.dynamodb import DynamoDBSink

    return DynamoDBSink.from_options(options)


def _webhook(options: SinkOptions) -> Sink:
    from shardline.sinks.webhook import WebhookSink

    return WebhookSink.from_options(options)


def _delta(options: SinkOptions) -> Sink:
    from shardline.sinks.delta import DeltaSink

    return DeltaSink.from_options(options)


def _archive(options: SinkOptions) -> Sink:
    from shardline.sinks.archive import ArchiveSink

    return ArchiveSink.from_options(options)


def _aws_messaging(options: SinkOptions) -> Sink:
    from shardline.sinks.eventbridge import EventBridgeSink
    from shardline.sinks.sns import SnsSink
    from shardline.sinks.sqs import SqsSink

    if options.scheme == "sqs":
        return SqsSink.from_options(options)
    if options.scheme == "sns":
        return SnsSink.from_options(options)
    return EventBridgeSink.from_options(options)


#: URL scheme -> (the query parameters the driver keeps, builder).
SCHEMES: dict[str, tuple[frozenset[str], Callable[[SinkOptions], Sink]]] = {}


def _register() -> None:
    from shardline.sinks.postgres import LIBPQ_PARAMETERS

    for scheme in ("postgresql", "postgres"):
        SCHEMES[scheme] = (LIBPQ_PARAMETERS, _postgres)
    SCHEMES["dynamodb"] = (frozenset(), _dynamodb)
    SCHEMES["file"] = (frozenset(), _archive)
    SCHEMES["s3"] = (frozenset(), _archive)
    SCHEMES["delta+file"] = (frozenset(), _delta)
    SCHEMES["delta+s3"] = (frozenset(), _delta)
    from shardline.sinks.webhook import WebhookQuery

    for scheme in ("http", "https"):
        SCHEMES[scheme] = (WebhookQuery(), _webhook)
    for scheme in ("sqs", "sns", "eventbridge"):
        SCHEMES[scheme] = (frozenset(), _aws_messaging)


def sink_from_url(
    url: str, extra: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Sink:
    """The sink ``url`` names, with ``extra`` options (a pipeline file's keys) on top.

    Raises :class:`ConfigError` for an unknown scheme or option, naming the sink.
    """
    if not SCHEMES:
        _register()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError(
            f"sink {url.split('?')[0]!r}: unknown kind {scheme or '(none)'!r} "
            f"(known: {', '.join(sorted(SCHEMES))}://...)"
        )
    keep, build = SCHEMES[scheme]
    options = parse_sink_url(url, keep, extra, environ)
    snapshot = options.take("snapshot", False, parse_bool)
    transform = options.take("transform")
    filters = options.take("filter_criteria")
    sink = build(options)
    sink.snapshot = snapshot
    if transform is not None:
        sink.transform = load_callable(str(transform), f"sink {sink.name}: transform")
    sink.filter_criteria = _filters(filters, sink.name)
    return sink


def _filters(value: Any, name: str) -> Any:
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"sink {name}: filter_criteria is not valid JSON: {exc}") from exc


def load_callable(spec: str, what: str) -> Callable[..., Any]:
    """Import ``module:function`` (the current directory is on the path); it must be callable."""
    target = import_attribute(spec, what)
    if not callable(target):
        raise ConfigError(f"{what} {spec!r} is not a function")
    return target
