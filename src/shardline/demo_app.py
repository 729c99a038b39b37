"""The processor the demo's workers run: counts what it sees, per worker."""

from __future__ import annotations

import os
from pathlib import Path

from shardline.records import StreamRecord

_processed = 0


def handle(records: list[StreamRecord]) -> None:
    """Count the batch and publish the running total for the demo's live view."""
    global _processed
    _processed += len(records)
    folder = os.environ.get("SHARDLINE_DEMO_DIR")
    if folder:
        name = os.environ.get("DEMO_WORKER", "worker")
        Path(folder, f"{name}.count").write_text(str(_processed))
