"""Test your processor against the embedded local stack, with pytest or without.

The kit starts the local stack in this process on a free port, creates tables with
streams, writes items, changes the shard graph, injects faults, runs your processor with
:class:`shardline.Consumer` on a background thread, and keeps what it received::

    import pytest
    from shardline.testing import LocalStreams

    @pytest.fixture(scope="session")
    def local():
        with LocalStreams.start() as streams:
            yield streams

    def test_totals(local):
        table = local.create_table()
        table.put({"pk": "order-1", "total": 5})
        table.rollover()
        table.put({"pk": "order-1", "total": 7})
        with local.consume(handle, table) as run:
            run.wait_for(lambda: len(run.records) == 2)
        assert [r.new_image["total"] for r in run.records] == [5, 7]

Needs the ``local`` extra (moto) and boto3. The stack accepts any credentials;
:meth:`LocalStreams.start` sets dummy ones in the environment when none are set.
moto's tables live in the process, so every :meth:`LocalStreams.create_table` gets a
unique name unless you give one.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any

from shardline.local import LocalStack
from shardline.local.faults import Faults
from shardline.local.settings import LOCAL
from shardline.processor import (
    AnyProcessor,
    AsyncRecordProcessor,
    InitializationInput,
    LeaseLostInput,
    ProcessorFactory,
    ProcessRecordsInput,
    RecordProcessor,
    ShardEndedInput,
    ShutdownRequestedInput,
    processor_factory,
)
from shardline.records import StreamRecord

__all__ = ["ConsumerRun", "LocalStreams", "StreamTable", "wait_until"]

_names = itertools.count(1)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll ``condition`` every 50 ms; AssertionError when still false after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout:g}s: {what or condition}")
        time.sleep(0.05)


class LocalStreams:
    """A running local stack plus helpers to make tables and run consumers on it."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.region = stack.region
        self._client: Any = None

    @classmethod
    def start(cls, **options: Any) -> LocalStreams:
        """Start a :class:`~shardline.local.LocalStack` on a free port (``options`` are
        its keyword arguments: ``faults``, ``iterator_ttl``, ``retention``, ...)."""
        LOCAL.setdefault_credentials(os.environ)
        return cls(LocalStack(**options).start())

    def close(self) -> None:
        """Stop the stack."""
        self.stack.stop()

    def __enter__(self) -> LocalStreams:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def endpoint_url(self) -> str:
        """The stack's ``http://<host>:<port>`` (``127.0.0.1`` unless ``host`` was given)."""
        return self.stack.endpoint_url

    @property
    def faults(self) -> Faults:
        """The stack's fault rules (see :mod:`shardline.local.faults`)."""
        return self.stack.faults

    @property
    def client(self) -> Any:
        """A boto3 DynamoDB client for the stack."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "dynamodb", endpoint_url=self.endpoint_url, region_name=self.region
            )
        return self._client

    def create_table(
        self,
        name: str | None = None,
        *,
        hash_key: str = "pk",
        hash_type: str = "S",
        range_key: str | None = None,
        range_type: str = "S",
        view_type: str = "NEW_AND_OLD_IMAGES",
    ) -> StreamTable:
        """Create a table with a stream (unique name unless given)."""
        name = name or f"table-{next(_names)}-{uuid.uuid4().hex[:6]}"
        schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        attributes = [{"AttributeName": hash_key, "AttributeType": hash_type}]
        if range_key is not None:
            schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
            attributes.append({"AttributeName": range_key, "AttributeType": range_type})
        self.client.create_table(
            TableName=name,
            KeySchema=schema,
            AttributeDefinitions=attributes,
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type},
        )
        return StreamTable(self, name)

    def consume(
        self,
        processor: object,
        table: StreamTable | str,
        *,
        application: str | None = None,
        **settings: Any,
    ) -> ConsumerRun:
        """Start ``processor`` on the table's stream on a background thread.

        ``processor`` is anything :class:`shardline.Consumer` takes. ``settings`` are
        :class:`~shardline.ConsumerConfig` fields; the defaults here suit tests
        (``idle_time=0.05``, ``failover_time=3``). Use the result as a context manager,
        or call :meth:`ConsumerRun.stop`.
        """
        name = table.name if isinstance(table, StreamTable) else table
        settings.setdefault("idle_time", 0.05)
        settings.setdefault("failover_time", 3.0)
        run = ConsumerRun(
            processor,
            table=name,
            application=application or f"{name}-app-{uuid.uuid4().hex[:6]}",
            endpoint_url=self.endpoint_url,
            region=self.region,
            **settings,
        )
        return run.start()


class StreamTable:
    """A table with a stream on the local stack; items are plain Python values."""

    def __init__(self, streams: LocalStreams, name: str) -> None:
        self.streams = streams
        self.name = name

    @property
    def stream_arn(self) -> str:
        """The table's latest stream ARN."""
        return self.streams.stack.stream_arn(self.name)

    def put(self, item: Mapping[str, Any]) -> None:
        """PutItem; floats become Decimal, bytes B, sets SS/NS/BS."""
        self.put_raw(to_wire(item))

    def put_raw(self, item: Mapping[str, Any]) -> None:
        """PutItem with an item already in DynamoDB JSON."""
        self.streams.client.put_item(TableName=self.name, Item=dict(item))

    def put_many(self, items: Iterable[Mapping[str, Any]]) -> None:
        """BatchWriteItem, 25 at a time (each item becomes one record)."""
        requests = [{"PutRequest": {"Item": to_wire(item)}} for item in items]
        for start in range(0, len(requests), 25):
            chunk = {self.name: requests[start : start + 25]}
            while chunk:
                answer = self.streams.client.batch_write_item(RequestItems=chunk)
                chunk = answer.get("UnprocessedItems") or {}

    def delete(self, key: Mapping[str, Any]) -> None:
        """DeleteItem (a REMOVE record by a user)."""
        self.streams.client.delete_item(TableName=self.name, Key=to_wire(key))

    def expire(self, key: Mapping[str, Any]) -> bool:
        """Delete as TTL does: a REMOVE whose ``user_identity`` is the DynamoDB service."""
        return self.streams.stack.expire(self.name, to_wire(key))

    def rollover(
        self, shard_id: str | None = None, *, parent_open_for: float | None = None
    ) -> list[str]:
        """Close the open shards (or one); each gets one child. Returns the children."""
        return self.streams.stack.rollover(self.name, shard_id, parent_open_for=parent_open_for)

    def split(
        self, shard_id: str | None = None, *, parent_open_for: float | None = None
    ) -> list[str]:
        """Split one open shard (default: the oldest) in two. Returns the children."""
        return self.streams.stack.split(self.name, shard_id, parent_open_for=parent_open_for)

    def shards(self) -> list[dict[str, Any]]:
        """Every shard of the latest stream, as DescribeStream shapes it."""
        return self.streams.stack.shards(self.name)

    def disable_stream(self) -> None:
        """Disable the stream: its shards close."""
        self.streams.stack.disable_stream(self.name)

    def enable_stream(self) -> str:
        """Enable the stream again: a NEW stream ARN (returned); the old stays readable."""
        return self.streams.stack.enable_stream(self.name)


def to_wire(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values as DynamoDB JSON (floats through ``Decimal(str(x))``)."""
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {name: serializer.serialize(_decimals(value)) for name, value in item.items()}


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_decimals(v) for v in value]
    return value


class ConsumerRun:
    """One :class:`shardline.Consumer` on a background thread, and what it received.

    :attr:`records` holds every record whose ``process_records`` call returned, in
    delivery order (redeliveries included). Exceptions of the consumer itself are
    re-raised by :meth:`wait_for` and :meth:`stop`.
    """

    def __init__(self, processor: object, **consumer_options: Any) -> None:
        from shardline.runner import Consumer

        self.records: list[StreamRecord] = []
        self.batches = 0
        self._lock = threading.Lock()
        factory = processor_factory(processor)
        self.consumer = Consumer(lambda: self._recording(factory), **consumer_options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="shardline-test-consumer")

    def start(self) -> ConsumerRun:
        """Start the consumer thread (``LocalStreams.consume`` already did)."""
        if not self._thread.is_alive() and not self._ready.is_set():
            self._thread.start()
            self._ready.wait(10)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful shutdown (leases released); re-raise the consumer's exception."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the consumer did not stop within {timeout:g}s")
        self._raise_error()

    def __enter__(self) -> ConsumerRun:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_for(
        self, condition: Callable[[], bool], timeout: float = 30.0, what: str = ""
    ) -> None:
        """Block until ``condition()`` holds (checked every 50 ms) or fail the test."""
        wait_until(lambda: self._raise_error() or condition(), timeout, what)

    async def wait_for_async(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """:meth:`wait_for` for ``async def`` tests: does not block their event loop."""
        deadline = time.monotonic() + timeout
        while not (self._raise_error() or condition()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not true after {timeout:g}s: {condition}")
            await asyncio.sleep(0.05)

    def wait_for_records(self, count: int, timeout: float = 30.0) -> list[StreamRecord]:
        """Wait until at least ``count`` records arrived; return them all."""
        self.wait_for(lambda: len(self.records) >= count, timeout, f"{count} records")
        return self.snapshot()

    def snapshot(self) -> list[StreamRecord]:
        """A copy of :attr:`records` (safe while the consumer still runs)."""
        with self._lock:
            return list(self.records)

    def keys(self, attribute: str = "pk") -> list[Any]:
        """The ``attribute`` key value of every record received, in order."""
        return [record.keys[attribute] for record in self.snapshot()]

    # --- internals -------------------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # handed to the test thread
            self._error = exc
        finally:
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self.consumer.run_async(self._stop)

    def _raise_error(self) -> bool:
        if self._error is not None:
            raise AssertionError(f"the consumer failed: {self._error!r}") from self._error
        return False

    def _received(self, batch: ProcessRecordsInput) -> None:
        with self._lock:
            self.records.extend(batch.records)
            self.batches += 1

    def _recording(self, factory: ProcessorFactory) -> AnyProcessor:
        inner = factory()
        if isinstance(inner, AsyncRecordProcessor):
            return _AsyncRecording(inner, self._received)
        return _Recording(inner, self._received)


class _Recording(RecordProcessor):
    """Delegates to the user's processor and reports each batch that succeeded."""

    def __init__(
        self, inner: RecordProcessor, report: Callable[[ProcessRecordsInput], None]
    ) -> None:
        self.inner = inner
        self.report = report

    def initialize(self, initialization: InitializationInput) -> None:
        self.inner.initialize(initialization)

    def process_records(self, batch: ProcessRecordsInput) -> None:
        self.inner.process_records(batch)
        self.report(batch)

    def lease_lost(self, lost: LeaseLostInput) -> None:
        self.inner.lease_lost(lost)

    def shard_ended(self, ended: ShardEndedInput) -> None:
        self.inner.shard_ended(ended)

    def shutdown_requested(self, request: ShutdownRequestedInput) -> None:
        self.inner.shutdown_requested(request)


class _AsyncRecording(AsyncRecordProcessor):
    """:class:`_Recording` for ``async def`` processors."""

    def __init__(
        self, inner: AsyncRecordProcessor, report: Callable[[ProcessRecordsInput], None]
    ) -> None:
        self.inner = inner
        self.report = report

    async def initialize(self, initialization: InitializationInput) -> None:
        await self.inner.initialize(initialization)

    async def process_records(self, batch: ProcessRecordsInput) -> None:
        await self.inner.process_records(batch)
        self.report(batch)

    async def lease_lost(self, lost: LeaseLostInput) -> None:
        await self.inner.lease_lost(lost)

    async def shard_ended(self, ended: ShardEndedInput) -> None:
        await self.inner.shard_ended(ended)

    async def shutdown_requested(self, request: ShutdownRequestedInput) -> None:
        await self.inner.shutdown_requested(request)
