"""Giving up on records: their failure documents go to the ``on_failure`` destination.

A batch given up on (retries exhausted, records too old) becomes Lambda's failure
documents (``DDBStreamBatchInfo``), split to fit the destination. Each send is retried
until it succeeds, so a record is never dropped because its destination was down; only
the shard stopping ends the retries (the records then stay undone and are delivered
again by the lease's next owner).
"""

from __future__ import annotations

import logging
from typing import Any

from shardline.delivery.destinations import Destination, document_name
from shardline.delivery.document import FailedBatch, encode, failure_documents
from shardline.metrics import Metrics
from shardline.retry import Retry

log = logging.getLogger("shardline.delivery")

__all__ = ["FailurePath"]


class FailurePath:
    """Sends given-up batches to one destination (named ``on_failure`` in logs)."""

    def __init__(
        self, destination: Destination, *, on_failure: str, retry: Retry, metrics: Metrics
    ) -> None:
        self._destination = destination
        self._on_failure = on_failure
        self._retry = retry
        self._metrics = metrics

    async def give_up(self, failed: FailedBatch) -> None:
        """Send every document of ``failed``; count and log the records given up on."""
        for document in failure_documents(failed, max_bytes=self._destination.max_bytes):
            await self._send(failed.shard_id, document)
        records = failed.records
        self._metrics.records_dropped.inc(len(records))
        self._metrics.destination_deliveries.inc()
        log.error(
            "shard %s: gave up on %d records %s..%s (%s after %d attempts); sent to %s",
            failed.shard_id,
            len(records),
            records[0].sequence_number,
            records[-1].sequence_number,
            failed.condition,
            failed.attempts,
            self._on_failure,
        )

    async def _send(self, shard_id: str, document: dict[str, Any]) -> None:
        info = document["DDBStreamBatchInfo"]
        name = document_name(shard_id, info["startSequenceNumber"], info["endSequenceNumber"])

        def unsent(error: Exception, failures: int, delay: float) -> None:
            log.error(
                "shard %s: could not send a failed batch to %s (%r); retrying in %.1fs",
                shard_id,
                self._on_failure,
                error,
                delay,
            )

        await self._retry.run(lambda: self._destination.send(name, encode(document)), unsent)
