"""What the SQS, SNS and EventBridge sinks share: a botocore client, rounds of batch calls.

Calls go through botocore (credentials, signing, endpoints, the standard retry of
throttled calls), run on a thread. The default endpoint and region are the source's
(``SinkContext.aws``), so a local stack serves the targets too; ``region``,
``endpoint_url`` and ``profile`` options choose others.

Order per key, with entries that can fail one by one (:func:`plan_calls`): a write sends
rounds; each round holds the next change of every key still to send -- one entry per key
-- packed into calls of ``max_entries`` (10) and ``max_bytes``, sent concurrently. An
entry that fails is retried in the next round (only those entries; a key's later changes
wait), with backoff; after ``retries`` rounds it is pushed back (the shard waits and
writes again). An entry the service refuses for good (sender fault, too large) fails its
key: the batch takes the delivery path's retry / bisect / ``on_failure`` route.
"""

from __future__ import annotations

import abc
import asyncio
import re
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from shardline.records import StreamRecord
from shardline.retry import Retry
from shardline.sinks.base import ShardSink, Sink, SinkContext, SinkError, SnapshotRow
from shardline.sinks.notify import Delivered, Messages, Outgoing, snapshot_records
from shardline.sinks.send_policy import backoff

__all__ = [
    "AWS_OPTIONS",
    "MESSAGE_LIMIT",
    "AwsMessageSink",
    "EntryOutcome",
    "group_id",
    "plan_calls",
]

AWS_OPTIONS: Final = frozenset({"region", "endpoint_url", "profile", "concurrency", "retries"})
MESSAGE_LIMIT: Final = 262_144  # SQS, SNS and EventBridge: 256 KiB a message and a call
_GROUP_ID: Final = re.compile(r"^[A-Za-z0-9!-/:-@\[-`{-~]{1,128}$")
_RETRIABLE_CODES: Final = frozenset(
    {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
     "InternalFailure", "InternalError", "ServiceUnavailable", "KMSThrottlingException",
     "RequestLimitExceeded", "TooManyRequestsException"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """How one entry of a batch call ended: ``ok``, ``retry`` or ``failed`` (and why)."""

    kind: Literal["ok", "retry", "failed"]
    reason: str = ""


OK: Final = EntryOutcome("ok")


def group_id(key: str) -> str:
    """A FIFO ``MessageGroupId`` for a key: the key itself when SQS/SNS accept it (1-128
    printable ASCII characters), else ``sha256:<hex>`` of it (still one group per key)."""
    if _GROUP_ID.match(key):
        return key
    import hashlib

    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def plan_calls(
    entries: Sequence[Outgoing],
    size_of: Callable[[Outgoing], int],
    max_entries: int,
    max_bytes: int,
) -> list[list[Outgoing]]:
    """``entries`` packed in order into calls of at most ``max_entries`` and ``max_bytes``."""
    calls: list[list[Outgoing]] = []
    current: list[Outgoing] = []
    size = 0
    for entry in entries:
        entry_size = size_of(entry)
        if current and (len(current) == max_entries or size + entry_size > max_bytes):
            calls.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry_size
    if current:
        calls.append(current)
    return calls


def is_retriable_code(code: str, status: int = 0) -> bool:
    """Whether an AWS error code (or an HTTP status of 5xx) is worth trying again."""
    return code in _RETRIABLE_CODES or status >= 500


class AwsMessageSink(Sink):
    """Base of the SQS, SNS and EventBridge sinks (see the module docstring)."""

    service: str = ""  # botocore's service name
    max_entries: int = 10

    def __init__(
        self,
        name: str,
        messages: Messages,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        concurrency: int = 8,
        retries: int = 3,
    ) -> None:
        self.name = name
        self.messages = messages
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile
        self.concurrency = max(concurrency, 1)
        self.retries = max(retries, 0)
        self.base_delay = 0.2
        #: Rounds are sent again while some entry waits for a retry (after ``delay``).
        self.round_retry = Retry(lambda n, _: self.delay(n), retriable=_entries_waiting)
        #: Where messages over 256 KiB go (``large_payloads=s3://...``; SQS and SNS).
        self.payloads: Any = None
        #: The region the target's ARN names, if it does (used unless ``region`` is given).
        self.target_region: str | None = None
        self._client: Any = None

    # --- what each service says ----------------------------------------------------------

    @abc.abstractmethod
    def resolve(self) -> None:
        """Find the target without sending (GetQueueUrl, ...); runs on a thread.

        Raises :class:`SinkError` (one line) when it does not exist or cannot be reached.
        """

    @abc.abstractmethod
    def entry(self, message: Outgoing, entry_id: str) -> dict[str, Any]:
        """The batch entry of one message."""

    @abc.abstractmethod
    def call(self, entries: list[dict[str, Any]]) -> dict[str, EntryOutcome]:
        """Send one batch call (on a thread); the outcome of each entry that did not go
        through, by its index in ``entries`` (as a string)."""

    def size(self, message: Outgoing) -> int:
        """The bytes a message counts against the service's limit."""
        return len(message.body)

    # --- life ----------------------------------------------------------------------------

    async def start(self, context: SinkContext) -> None:
        """Create the client (source's endpoint and region by default), find the target."""
        self.messages.transform = self.transform
        self.messages.bind(context)
        await asyncio.to_thread(self._connect, context.aws)

    def _connect(self, base: Any) -> None:
        import botocore.exceptions
        import botocore.session

        from shardline.aws.endpoints import region_or_aws_region

        source_region = getattr(base, "region", None) if base else None
        region = self.region or self.target_region or source_region
        elsewhere = self.region or (self.target_region and self.target_region != source_region)
        endpoint = self.endpoint_url or (
            None if elsewhere or base is None else getattr(base, "endpoint_url", None)
        )
        try:
            session = botocore.session.Session(
                profile=self.profile or getattr(base, "profile", None)
            )
            self._client = session.create_client(
                self.service, region_name=region_or_aws_region(region), endpoint_url=endpoint
            )
            if self.payloads is not None:
                self.payloads.client = session.create_client(
                    "s3", region_name=region_or_aws_region(region), endpoint_url=endpoint
                )
            self.resolve()
        except SinkError:
            raise
        except botocore.exceptions.ClientError as exc:
            raise SinkError(self.name, _client_error_text(exc)) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise SinkError(self.name, " ".join(str(exc).split())) from exc

    async def close(self) -> None:
        """Drop the client."""
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    def open_shard(self, shard_id: str) -> ShardSink:
        """A writer for one shard lease; shards share the client."""
        return _MessageShard(self)

    async def write_snapshot(self, rows: Sequence[SnapshotRow]) -> None:
        """Send snapshot rows as changes (Debezium ``op`` ``r``)."""
        records = snapshot_records(rows, self.messages.source.key_names)
        await _MessageShard(self).write(records)

    # --- rounds --------------------------------------------------------------------------

    async def send_round(self, heads: list[Outgoing]) -> dict[str, EntryOutcome]:
        """One change per key: packed into calls, sent concurrently; outcome per event id."""
        outcomes: dict[str, EntryOutcome] = {}
        fitting = []
        for message in heads:
            if self.size(message) <= MESSAGE_LIMIT:
                fitting.append(message)
                continue
            pointer, outcome = await self._offload(message)
            if pointer is not None:
                fitting.append(pointer)
            else:
                outcomes[message.event_id] = outcome
        calls = plan_calls(fitting, self.size, self.max_entries, MESSAGE_LIMIT)
        limit = asyncio.Semaphore(self.concurrency)

        async def one(call: list[Outgoing]) -> None:
            async with limit:
                outcomes.update(await self._call(call))

        await asyncio.gather(*(one(c) for c in calls))
        return outcomes

    async def _offload(self, message: Outgoing) -> tuple[Outgoing | None, EntryOutcome]:
        """A message over the limit: stored in S3 (its pointer returned), or refused."""
        import botocore.exceptions

        if self.payloads is None:
            why = (
                f"the message of {message.event_id} is {self.size(message)} bytes, over the "
                f"limit of {MESSAGE_LIMIT} (large_payloads=s3://... stores such messages)"
            )
            return None, EntryOutcome("failed", why)
        try:
            return await asyncio.to_thread(self.payloads.offload, message), OK
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            retry = is_retriable_code(str(error.get("Code", "")), status)
            why = f"storing a large message in S3: {_client_error_text(exc)}"
            return None, EntryOutcome("retry" if retry else "failed", why)
        except botocore.exceptions.BotoCoreError as exc:
            return None, EntryOutcome("retry", f"storing a large message in S3: {exc}")

    async def _call(self, call: list[Outgoing]) -> dict[str, EntryOutcome]:
        import botocore.exceptions

        ids = [str(i) for i in range(len(call))]
        entries = [self.entry(m, i) for i, m in zip(ids, call, strict=True)]
        try:
            by_id = await asyncio.to_thread(self.call, entries)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            kind: Literal["retry", "failed"] = (
                "retry" if is_retriable_code(str(error.get("Code", "")), status) else "failed"
            )
            by_id = dict.fromkeys(ids, EntryOutcome(kind, _client_error_text(exc)))
        except botocore.exceptions.BotoCoreError as exc:  # connection errors and the like
            by_id = dict.fromkeys(ids, EntryOutcome("retry", str(exc)))
        return {m.event_id: by_id.get(str(i), OK) for i, m in enumerate(call)}

    def delay(self, round_number: int) -> float:
        """Backoff before retrying failed entries."""
        return backoff(round_number, self.base_delay, 10.0)

    def iam_arn(self, region: str, account: str) -> str:  # pragma: no cover - overridden
        """The ARN of the target."""
        return "*"


class _MessageShard(ShardSink):
    def __init__(self, sink: AwsMessageSink) -> None:
        self.sink = sink
        self.delivered = Delivered()

    async def write(self, records: Sequence[StreamRecord]) -> None:
        sink = self.sink
        self.refuse_if_lost(f"sink {sink.name}")
        messages = sink.messages.outgoing(records)
        queues: OrderedDict[str, deque[Outgoing]] = OrderedDict()
        for message in self.delivered.pending(messages):
            queues.setdefault(message.key, deque()).append(message)
        failures: list[EntryOutcome] = []
        tries: dict[str, int] = {}

        async def rounds() -> None:
            """Send the head of every key's queue until they are empty or wait for a retry."""
            while queues:
                outcomes = await sink.send_round([q[0] for q in queues.values()])
                failed, waiting = _settle_round(
                    queues, outcomes, tries, sink.retries, self.delivered
                )
                failures.extend(failed)
                if waiting:
                    raise _EntriesWaiting

        await sink.round_retry.run(rounds)
        if not failures:
            self.delivered.forget(messages)
            return
        refused = [f for f in failures if f.kind == "failed"]
        first = (refused or failures)[0]
        raise SinkError(
            sink.name,
            f"{len(failures)} change(s) not delivered: {first.reason}",
            retriable=not refused,
        )


class _EntriesWaiting(Exception):
    """Internal: some entries of a round are to be sent again after a backoff."""


def _entries_waiting(error: Exception) -> bool:
    return isinstance(error, _EntriesWaiting)


def _settle_round(
    queues: OrderedDict[str, deque[Outgoing]],
    outcomes: dict[str, EntryOutcome],
    tries: dict[str, int],
    retries: int,
    delivered: Delivered,
) -> tuple[list[EntryOutcome], bool]:
    """Apply a round's outcomes to the per-key queues (each queue's head was sent).

    A delivered head leaves its queue; a refused one, or one out of tries, fails and
    takes its key's later changes with it (they must not overtake it). Returns the
    failures and whether some head waits to be sent again.
    """
    failed: list[EntryOutcome] = []
    waiting = False
    for key in list(queues):
        head = queues[key][0]
        outcome = outcomes.get(head.event_id, OK)
        if outcome.kind == "ok":
            delivered.add(head.event_id)
            queues[key].popleft()
            if not queues[key]:
                del queues[key]
            continue
        tries[head.event_id] = tries.get(head.event_id, 0) + 1
        if outcome.kind == "failed" or tries[head.event_id] > retries:
            failed.append(outcome)
            del queues[key]
        else:
            waiting = True
    return failed, waiting


def _client_error_text(exc: Any) -> str:
    error = exc.response.get("Error", {})
    code = error.get("Code", "Error")
    message = " ".join(str(error.get("Message", "")).split())
    return f"{code}: {message}" if message else str(code)
