"""ShardReader: one shard's records, page by page, from the lease's checkpoint.

It owns the shard iterator: the first from the checkpoint (``TRIM_HORIZON``, ``LATEST``
or after a sequence number), a fresh one after an expired iterator, ``TRIM_HORIZON``
after records were trimmed before they were read (reported loudly: they may be lost).
It drops records at or below what was read already, re-polls at once after a page
with records and pauses the idle time after an empty one. Throttling, 5xx and
connection failures are retried in place (:func:`patient_retry`): a long outage slows a
shard down, it does not end it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from shardline.consumer.host import ConsumerSettings
from shardline.consumer.signals import Signals
from shardline.errors import ExpiredIteratorError, ShardlineError, TrimmedDataAccessError
from shardline.leases.model import LATEST, TRIM_HORIZON, Lease
from shardline.metrics import Metrics
from shardline.records import StreamRecord
from shardline.retry import Backoff, Retry
from shardline.streams.client import StreamsClient
from shardline.streams.model import RecordsPage
from shardline.streams.wire import WireRecord

log = logging.getLogger("shardline.consumer")

__all__ = ["Page", "ShardReader", "patient_retry"]


@dataclass(frozen=True)
class Page:
    """Fresh records of one GetRecords answer, and how far behind the newest one is."""

    records: list[StreamRecord]
    millis_behind: int


def patient_retry(shard_id: str, settings: ConsumerSettings, signals: Signals) -> Retry:
    """Retry retriable service errors (the AWS client retried a few times already) with
    backoff, in place; any signal (lease lost, stop, handoff) ends the wait."""

    def warn(error: Exception, attempt: int, delay: float) -> None:
        log.warning("shard %s: %s; retrying in %.1fs (attempt %d)", shard_id, error, delay, attempt)

    return Retry(
        Backoff(settings.retry_base_delay, settings.retry_max_delay),
        pause=signals.pause,
        retriable=lambda e: isinstance(e, ShardlineError) and e.retriable,
        on_retry=warn,
    )


class ShardReader:
    """Reads one shard for its consumer (see the module docstring)."""

    def __init__(
        self,
        lease: Lease,
        *,
        streams: StreamsClient,
        settings: ConsumerSettings,
        signals: Signals,
        metrics: Metrics,
    ) -> None:
        self.shard_id = lease.key
        self.position: str | None = None  # sequence number of the last record read
        self.trim_events = 0
        self._checkpoint = lease.checkpoint
        self._streams = streams
        self._settings = settings
        self._signals = signals
        self._metrics = metrics
        self._iterator_age = metrics.iterator_age.labels(lease.key)
        self._patient = patient_retry(lease.key, settings, signals)
        self._iterator: str | None = None
        self._idle = False
        self._trim_gap_after: str | None = None

    async def start(self) -> None:
        """Get the first iterator, from the lease's checkpoint."""
        checkpoint = self._checkpoint
        if checkpoint in (TRIM_HORIZON, LATEST):
            self._iterator = await self._get_iterator(checkpoint)
            return
        self.position = checkpoint
        self._iterator = await self._iterator_after_position()

    async def next_page(self) -> Page | None:
        """The next page; ``None`` once the shard is closed and read to its end.

        Raises :class:`~shardline.errors.ResourceNotFoundError` when the shard is gone
        from the stream (expired after its retention).
        """
        if self._idle:
            await self._signals.pause(self._settings.idle_time)
        while self._iterator is not None:
            self._signals.check()
            page = await self._fetch(self._iterator)
            if page is None:  # iterator replaced after expiry or trimming
                self._iterator = await self._iterator_after_position()
                continue
            self._iterator = page.next_iterator
            self._idle = self._iterator is not None and not page.records
            millis_behind = _millis_behind(page.records)
            self._iterator_age.set(millis_behind)
            return Page(self._fresh_records(page), millis_behind)
        return None

    def count_possible_loss(self) -> None:
        """Records may be lost (trimmed, or the shard expired): count it loudly."""
        self.trim_events += 1
        self._metrics.records_possibly_lost.inc()

    # --- iterators ---------------------------------------------------------------------

    async def _iterator_after_position(self) -> str:
        if self.position is None:
            after_trim = self.trim_events > 0
            latest = self._checkpoint == LATEST and not after_trim
            return await self._get_iterator(LATEST if latest else TRIM_HORIZON)
        try:
            return await self._get_iterator("AFTER_SEQUENCE_NUMBER", self.position)
        except TrimmedDataAccessError:
            self._report_trimmed()
            return await self._get_iterator(TRIM_HORIZON)

    async def _get_iterator(self, kind: str, sequence_number: str | None = None) -> str:
        return await self._patient.run(
            lambda: self._streams.get_shard_iterator(
                self._settings.stream_arn, self.shard_id, kind, sequence_number
            )
        )

    # --- pages -------------------------------------------------------------------------

    async def _fetch(self, iterator: str) -> RecordsPage | None:
        started = time.monotonic()
        self._metrics.get_records_calls.inc()
        try:
            page = await self._patient.run(
                lambda: self._streams.get_records(iterator, self._settings.max_records)
            )
        except ExpiredIteratorError:
            log.info(
                "shard %s: iterator expired; re-acquiring after %s", self.shard_id, self.position
            )
            return None
        except TrimmedDataAccessError:
            self._report_trimmed()
            return None
        self._metrics.get_records_latency.observe(time.monotonic() - started)
        self._metrics.records_polled.inc(len(page.records))
        return page

    def _report_trimmed(self) -> None:
        after = self.position or self._checkpoint
        log.error(
            "shard %s: records after %s were trimmed before they were read (older than the "
            "stream's retention); resuming at TRIM_HORIZON. Changes in that range may be LOST.",
            self.shard_id,
            after,
        )
        self._trim_gap_after = after
        self.count_possible_loss()
        self.position = None

    def _fresh_records(self, page: RecordsPage) -> list[StreamRecord]:
        """Wrap the page's records, dropping any at or below what was already read."""
        wires = page.records
        floor = int(self.position) if self.position and self.position.isdigit() else -1
        if wires and int(wires[0].dynamodb.SequenceNumber) <= floor:
            wires = [wire for wire in wires if int(wire.dynamodb.SequenceNumber) > floor]
        records = [StreamRecord(wire, self.shard_id) for wire in wires]
        if records:
            self.position = records[-1].sequence_number
            self._report_gap_end(records[0].sequence_number)
        return records

    def _report_gap_end(self, first: str) -> None:
        if self._trim_gap_after is None:
            return
        log.error(
            "shard %s: resumed at %s after trimming; records after %s and before %s may be LOST",
            self.shard_id,
            first,
            self._trim_gap_after,
            first,
        )
        self._trim_gap_after = None


def _millis_behind(records: list[WireRecord]) -> int:
    """Age of the newest record (0 for an empty page: the reader is at the tip)."""
    if not records:
        return 0
    created = records[-1].dynamodb.ApproximateCreationDateTime
    if created is None:
        return 0
    return max(0, int((time.time() - created) * 1000))
