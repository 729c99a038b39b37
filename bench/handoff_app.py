"""Processor for the handoff benchmark: ``shardline run handoff_app:handle``.

Appends ``<time.time()> <shard id> <records>`` per batch to ``$BENCH_HANDOFF_LOG``.

Experiment: with ``$BENCH_TAKE_INTERVAL`` set, the worker scans the lease table every that
many seconds instead of failover/4 (measures a proposed change to ``ConsumerConfig``).
"""

from __future__ import annotations

import os
import time
from typing import Any

_LOG = open(os.environ["BENCH_HANDOFF_LOG"], "a", buffering=1)  # noqa: SIM115 - whole process

if os.environ.get("BENCH_TAKE_INTERVAL"):
    from shardline.config import ConsumerConfig

    _interval = float(os.environ["BENCH_TAKE_INTERVAL"])
    ConsumerConfig.take_interval = property(lambda self: _interval)  # type: ignore[assignment,method-assign]


def handle(records: list[Any]) -> None:
    if records:
        _LOG.write(f"{time.time():.4f} {records[0].shard_id} {len(records)}\n")
