"""One invocation of a batch handler, and its :class:`Verdict`.

The verdict says where a batch failed (``failed_from``: the whole batch from 0, or the
first record a partial batch response names), and why. A sink that pushes back
(``SinkError(retriable=True)``: its target is busy, the records are fine) is waited for
and invoked again without a verdict: no attempt is counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from shardline.delivery.invoke import Invoker, TumblingWindow
from shardline.delivery.plan import first_failure
from shardline.errors import ShutdownError
from shardline.metrics import Metrics
from shardline.records import StreamRecord
from shardline.retry import Retry
from shardline.sinks.base import SinkError

log = logging.getLogger("shardline.delivery")

__all__ = ["HandlerCall", "Verdict", "is_pushback"]


@dataclass(frozen=True)
class Verdict:
    """How an invocation went: ``failed_from`` is ``None`` on success."""

    failed_from: int | None = None
    error_type: str = ""
    error_message: str = ""
    response: Any = None


def is_pushback(error: Exception) -> bool:
    """A sink's target is busy (``SinkError(retriable=True)``): wait, it is no failure."""
    return isinstance(error, SinkError) and error.retriable


class HandlerCall:
    """Invokes one shard's handler and judges the answer."""

    def __init__(
        self,
        invoker: Invoker,
        *,
        report_batch_item_failures: bool,
        retry: Retry,
        metrics: Metrics,
    ) -> None:
        self._invoker = invoker
        self._partial = report_batch_item_failures
        self._pushback = replace(retry, retriable=is_pushback)
        self._metrics = metrics

    async def __call__(
        self, shard_id: str, records: list[StreamRecord], window: TumblingWindow | None
    ) -> Verdict:
        """Invoke until the target takes the call; the verdict of that invocation."""

        def pushed_back(error: Exception, failures: int, delay: float) -> None:
            self._metrics.sink_pushbacks.inc()
            log.warning("shard %s: %s; retrying (the target pushed back)", shard_id, error)

        return await self._pushback.run(
            lambda: self._invoke_once(shard_id, records, window), pushed_back
        )

    async def _invoke_once(
        self, shard_id: str, records: list[StreamRecord], window: TumblingWindow | None
    ) -> Verdict:
        self._metrics.invocations.inc()
        try:
            response = await self._invoker(records, window)
        except ShutdownError:
            raise
        except Exception as exc:
            if is_pushback(exc):
                raise
            return self._failed(shard_id, records, exc)
        return self._judge(records, response)

    def _failed(self, shard_id: str, records: list[StreamRecord], exc: Exception) -> Verdict:
        self._metrics.invocation_failures.inc()
        log.warning(
            "shard %s: handler failed on %d records %s..%s: %s",
            shard_id,
            len(records),
            records[0].sequence_number if records else "-",
            records[-1].sequence_number if records else "-",
            exc if isinstance(exc, SinkError) else repr(exc),
        )
        return Verdict(0, type(exc).__name__, str(exc))

    def _judge(self, records: list[StreamRecord], response: Any) -> Verdict:
        if not self._partial or not records:
            return Verdict(response=response)
        failed_from = first_failure(response, [r.sequence_number for r in records])
        if failed_from is None:
            return Verdict(response=response)
        self._metrics.invocation_failures.inc()
        seq = records[failed_from].sequence_number
        return Verdict(failed_from, "BatchItemFailure", f"the handler reported {seq} as failed")
