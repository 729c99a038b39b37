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
from typing import Any

from shardline.config import ConsumerConfig
from shardline.metrics import Metrics
from shardline.processor import processor_factory
from shardline.streams.aws import AwsSettings
from shardline.worker import Worker

log = logging.getLogger("shardline")


class Consumer:
    """A worker process consuming one stream with one processor.

    ``processor`` is a function ``handle(records)`` (sync or async), a
    :class:`~shardline.RecordProcessor` subclass, or a zero-argument factory of
    processors. Keyword arguments are the fields of :class:`~shardline.ConsumerConfig`;
    ``endpoint_url`` and ``region`` are accepted as shortcuts for the AWS settings.
    """

    def __init__(
        self,
        processor: object,
        *,
        application: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        **settings: Any,
    ) -> None:
        aws = settings.pop("aws", None) or AwsSettings(region=region, endpoint_url=endpoint_url)
        self.config = ConsumerConfig(application=application, aws=aws, **settings)
        self.processor_factory = processor_factory(processor)
        self.metrics = Metrics()
        self.worker = Worker(self.config, self.processor_factory, self.metrics)

    def run(self) -> None:
        """Run until SIGTERM or SIGINT; a second signal exits at once."""
        asyncio.run(self.run_async(handle_signals=True))

    async def run_async(
        self, stop: asyncio.Event | None = None, *, handle_signals: bool = False
    ) -> None:
        """Run on the current event loop until ``stop`` is set (or a signal arrives)."""
        stop = stop or asyncio.Event()
        if handle_signals:
            _install_signal_handlers(stop)
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
