"""Building the per-shard processor for a handler under delivery controls."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from shardline.aws.settings import AwsSettings
from shardline.delivery.config import DeliveryConfig
from shardline.delivery.destinations import make_destination
from shardline.delivery.invoke import StreamArn, batch_invoker, lambda_invoker
from shardline.delivery.processor import DeliveryProcessor, DeliverySettings
from shardline.errors import ConfigError
from shardline.metrics import Metrics
from shardline.processor import AsyncRecordProcessor, ProcessorFactory, RecordProcessor
from shardline.processor import processor_factory as plain_processor_factory
from shardline.records import StreamRecord

if TYPE_CHECKING:
    from shardline.sinks.base import Sink


def wrap_processor(
    handler: object,
    delivery_config: DeliveryConfig | None,
    lambda_mode: bool = False,
    *,
    stream_arn: StreamArn = "",
    metrics: Metrics | None = None,
    aws: AwsSettings | None = None,
    destination_endpoint_url: str | None = None,
    function_name: str | None = None,
    retry_base_delay: float = 0.5,
    retry_max_delay: float = 30.0,
    sinks: Sequence[Sink] = (),
) -> ProcessorFactory:
    """The per-shard processor factory for ``handler`` under ``delivery_config``.

    With no config, not ``lambda_mode`` and no ``sinks`` this is
    :func:`shardline.processor.processor_factory` (nothing changes). Otherwise
    ``handler`` must be a function: ``handle(records)`` (``handle(records, window)`` with
    tumbling windows), or, in ``lambda_mode``, a Lambda ``handler(event, context)``;
    ``lambda_mode`` with no config uses Lambda's defaults. With ``sinks``, ``handler``
    may be ``None``; each batch goes to the handler first, then to every sink (see
    :mod:`shardline.sinks.fanout`). ``stream_arn`` may be a zero-argument callable (the
    worker resolves the ARN at start). The destination endpoint defaults to
    ``aws.endpoint_url``.
    """
    if delivery_config is None and not lambda_mode and not sinks:
        return plain_processor_factory(handler)
    config = delivery_config or DeliveryConfig()
    function = None if handler is None and sinks else _checked_function(handler)
    aws = aws or AwsSettings()
    destination = None
    if config.on_failure is not None:
        destination = make_destination(
            config.on_failure,
            region=aws.region,
            endpoint_url=destination_endpoint_url or aws.endpoint_url,
            profile=aws.profile,
        )
    settings = DeliverySettings(
        stream_arn=stream_arn,
        destination=destination,
        retry_base_delay=retry_base_delay,
        retry_max_delay=retry_max_delay,
        metrics=metrics,
    )
    if sinks:
        if lambda_mode:
            raise ConfigError("--lambda cannot be combined with sinks; pass a function instead")
        return _sink_factory(sinks, function, config, settings)
    assert function is not None
    if lambda_mode:
        name = function_name or str(getattr(function, "__name__", "shardline"))
        invoker = lambda_invoker(function, stream_arn, function_name=name)
    else:
        invoker = batch_invoker(function)
    return lambda: DeliveryProcessor(invoker, config, settings)


def _sink_factory(
    sinks: Sequence[Sink],
    function: Callable[..., Any] | None,
    config: DeliveryConfig,
    settings: DeliverySettings,
) -> ProcessorFactory:
    """Per shard: the handler (if any), then every sink; checkpoint when all hold a batch."""
    from shardline.delivery.filters import FilterSet, normalize_filter_criteria
    from shardline.sinks.batching import apply_batch_hints
    from shardline.sinks.fanout import SinkFanout, SinkRoute

    config = apply_batch_hints(config, sinks)

    routes = [
        SinkRoute(sink, FilterSet(normalize_filter_criteria(sink.filter_criteria)))
        for sink in sinks
    ]
    metrics = settings.metrics or Metrics()

    def make() -> DeliveryProcessor:
        fanout = SinkFanout(routes, function, settings.stream_arn, metrics)
        return DeliveryProcessor(fanout, config, settings)

    return make


def _checked_function(handler: object) -> Callable[..., Any]:
    if isinstance(handler, type) and issubclass(handler, RecordProcessor | AsyncRecordProcessor):
        raise ConfigError(
            f"delivery controls wrap a function handle(records), not the processor class "
            f"{handler.__name__}; drop the controls or pass a function"
        )
    if not callable(handler):
        raise ConfigError(f"{handler!r} is not callable")
    return handler


def fail_fast(
    record_handler: Callable[[StreamRecord], Any],
) -> Callable[[list[StreamRecord]], Any]:
    """A batch handler that stops at the first failing record, in order.

    Records before the failure are done; the response names the failing record, so with
    ``report_batch_item_failures`` shardline checkpoints before it and retries from it.
    Nothing after a failure runs, so no record is processed out of order or twice
    because a later one failed (what Powertools' ``BatchProcessor`` cannot do).
    """

    def handle(records: list[StreamRecord]) -> dict[str, Any]:
        for record in records:
            try:
                record_handler(record)
            except Exception:
                logging.getLogger("shardline.delivery").exception(
                    "record %s failed; stopping the batch there", record.sequence_number
                )
                failure = {"itemIdentifier": record.sequence_number}
                return {"batchItemFailures": [failure]}
        return {"batchItemFailures": []}

    handle.__name__ = getattr(record_handler, "__name__", "handle")
    return handle
