"""A processor for worker subprocesses in tests: appends what it sees to a file.

Each line: worker shard sequence key version. The file named by RECORDER_FILE is opened
in append mode, so several workers may share it.
"""

from __future__ import annotations

import os
import time

from shardline.records import StreamRecord

_SLOW = float(os.environ.get("RECORDER_DELAY", "0"))


def handle(records: list[StreamRecord]) -> None:
    worker = os.environ.get("RECORDER_WORKER", "w")
    lines = []
    for record in records:
        image = record.new_image or record.old_image or {}
        lines.append(
            f"{worker} {record.shard_id} {record.sequence_number} "
            f"{record.keys['pk']} {image.get('version', 0)}\n"
        )
    with open(os.environ["RECORDER_FILE"], "a", encoding="utf-8") as out:
        out.write("".join(lines))
        out.flush()
    if _SLOW:
        time.sleep(_SLOW)
