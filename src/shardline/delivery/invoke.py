"""How a batch reaches the user's handler: shardline's ``handle(records)`` or Lambda's.

An :data:`Invoker` takes the records of one batch (and, with tumbling windows, the
window) and returns whatever the handler returned. Synchronous handlers run on a thread,
``async def`` handlers on the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shardline.lambda_compat import LambdaContext, lambda_event, region_of_arn
from shardline.records import StreamRecord

StreamArn = str | Callable[[], str]


@dataclass(frozen=True)
class TumblingWindow:
    """The window of a tumbling-window invocation (Lambda's event fields, in snake_case).

    A plain handler receives it as its second argument ``handle(records, window)`` and
    returns ``{"state": {...}}`` (optionally with ``batchItemFailures``) to carry state
    to the next invocation of the same window.
    """

    start: str
    end: str
    shard_id: str
    state: dict[str, Any] = field(default_factory=dict)
    is_final_invoke_for_window: bool = False
    is_window_terminated_early: bool = False

    def as_event_fields(self) -> dict[str, Any]:
        """The fields :func:`shardline.lambda_compat.lambda_event` adds to the event."""
        return {
            "start": self.start,
            "end": self.end,
            "state": self.state,
            "shardId": self.shard_id,
            "isFinalInvokeForWindow": self.is_final_invoke_for_window,
            "isWindowTerminatedEarly": self.is_window_terminated_early,
        }


Invoker = Callable[[list[StreamRecord], TumblingWindow | None], Awaitable[Any]]


def resolve_arn(stream_arn: StreamArn) -> str:
    """The stream ARN now (a provider is called: the worker resolves it at start)."""
    return stream_arn() if callable(stream_arn) else stream_arn


def batch_invoker(handle: Callable[..., Any]) -> Invoker:
    """Calls ``handle(records)`` (or ``handle(records, window)`` with tumbling windows)."""

    async def invoke(records: list[StreamRecord], window: TumblingWindow | None) -> Any:
        if window is None:
            return await call_handler(handle, records)
        return await call_handler(handle, records, window)

    return invoke


def lambda_invoker(
    handler: Callable[..., Any],
    stream_arn: StreamArn,
    *,
    function_name: str = "shardline",
    timeout: float = 900.0,
) -> Invoker:
    """Calls ``handler(event, context)`` with Lambda's DynamoDB Streams event."""

    async def invoke(records: list[StreamRecord], window: TumblingWindow | None) -> Any:
        arn = resolve_arn(stream_arn)
        fields = window.as_event_fields() if window is not None else None
        event = lambda_event(records, arn, window=fields)
        context = LambdaContext(function_name, region=region_of_arn(arn), timeout=timeout)
        return await call_handler(handler, event, context)

    return invoke


async def call_handler(fn: Callable[..., Any], *args: Any) -> Any:
    """Await an ``async def`` handler; run a plain one on a thread."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        return await result
    return result
