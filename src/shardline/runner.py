"""`shardline.Consumer`: run a processor over a DynamoDB stream from Python.

```python
import shardline

def handle(records):
    for r in records:
        print(r.event_name, r.keys, r.new_image)

shardline.Consumer(handle, table="Orders", application="orders-sync").run()
```
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shardline import early_signals
from shardline.aws.settings import AwsSettings
from shardline.config import ConsumerConfig
from shardline.errors import ConfigError
from shardline.metrics import Metrics
from shardline.processor import ProcessorFactory, processor_factory
from shardline.worker import Worker, WorkerHook

if TYPE_CHECKING:
    from shardline.delivery.config import DeliveryConfig
    from shardline.sinks.base import Sink

log = logging.getLogger("shardline")


class Consumer:
    """A worker process consuming one stream with one processor.

    ``processor`` is a function ``handle(records)`` (sync or async), a
    :class:`~shardline.RecordProcessor` subclass, or a zero-argument factory of
    processors. Keyword arguments are the fields of :class:`~shardline.ConsumerConfig`;
    ``endpoint_url`` and ``region`` are accepted as shortcuts for the AWS settings.

    ``sinks`` (see :mod:`shardline.sinks`) write every batch into their targets under the
    delivery controls; ``processor`` may then be ``None`` (or a function, which runs
    first). A batch is checkpointed once every sink holds it.
    """

    def __init__(
        self,
        processor: object = None,
        *,
        application: str,
        sinks: Sequence[Sink] = (),
        snapshot_segments: int = 8,
        endpoint_url: str | None = None,
        region: str | None = None,
        delivery: DeliveryConfig | None = None,
        lambda_mode: bool = False,
        function_name: str | None = None,
        destination_endpoint_url: str | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        **settings: Any,
    ) -> None:
        aws = settings.pop("aws", None) or AwsSettings(region=region, endpoint_url=endpoint_url)
        if processor is None and not sinks:
            raise ConfigError("give a processor, a sink, or both")
        self.sinks = list(sinks)
        if delivery is not None or lambda_mode or sinks:
            # batching and tumbling windows need a call after empty pages too
            settings.setdefault("call_process_records_even_for_empty_list", True)
        self.config = ConsumerConfig(application=application, aws=aws, **settings)
        self.metrics = Metrics()
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.processor_factory = self._factory(
            processor, delivery, lambda_mode, function_name, destination_endpoint_url
        )
        hooks: tuple[WorkerHook, ...] = ()
        if self.sinks:
            from shardline.sinks.runtime import SinkRuntime

            hooks = (SinkRuntime(self.sinks, self.metrics, snapshot_segments=snapshot_segments),)
        self.worker = Worker(self.config, self.processor_factory, self.metrics, hooks=hooks)

    def _factory(
        self,
        processor: object,
        delivery: DeliveryConfig | None,
        lambda_mode: bool,
        function_name: str | None,
        destination_endpoint_url: str | None,
    ) -> ProcessorFactory:
        if delivery is None and not lambda_mode and not self.sinks:
            return processor_factory(processor)
        from shardline.delivery.wrap import wrap_processor

        return wrap_processor(
            processor,
            delivery,
            lambda_mode,
            stream_arn=lambda: self.worker.stream_arn or "",
            metrics=self.metrics,
            aws=self.config.aws,
            destination_endpoint_url=destination_endpoint_url,
            function_name=function_name,
            retry_base_delay=self.config.retry_base_delay,
            retry_max_delay=self.config.retry_max_delay,
            sinks=self.sinks,
        )

    def run(self, *, event_loop: str = "auto") -> None:
        """Run until SIGTERM or SIGINT; a second signal exits at once.

        ``event_loop``: ``auto`` (uvloop when installed), ``uvloop`` or ``asyncio``.
        """
        from shardline.event_loop import run

        run(self.run_async(handle_signals=True), event_loop=event_loop)

    async def run_async(
        self, stop: asyncio.Event | None = None, *, handle_signals: bool = False
    ) -> None:
        """Run on the current event loop until ``stop`` is set (or a signal arrives)."""
        stop = stop or asyncio.Event()
        if handle_signals:
            _install_signal_handlers(stop)
        if self.metrics_port is None:
            await self.worker.run(stop)
            return
        from shardline.observability import ObservabilityServer

        server = ObservabilityServer(
            self.metrics, self.worker, host=self.metrics_host, port=self.metrics_port
        )
        async with server:
            await self.worker.run(stop)


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second %s: exiting at once", signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info(
            "%s: finishing in-flight batches and releasing leases (send again to exit at once)",
            signal.Signals(signum).name,
        )
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    early = early_signals.noted()
    if early is not None:
        on_signal(early)  # it arrived while the worker was starting
