"""The chaos suite's processor: records every event to a shared append-only file.

Each line is one event, space-separated, written with one ``os.write`` on an
``O_APPEND`` descriptor (so lines of different processes never interleave and the
file order is the real order of events):

* ``R time worker pid shard sequence key version lease``  a record was processed
* ``I time worker pid shard checkpoint lease``            a consumer initialized
* ``C start end worker pid shard value outcome lease``    a checkpoint: ok, refused or error
* ``L time worker pid shard lease``                       the lease was lost
* ``E time worker pid shard lease``                       SHARD_END was checkpointed

``lease`` is the lease counter at which this process acquired the lease it works under
(``InitializationInput.lease_counter``): it orders the holders of one shard's lease by
the lease table's own fence, whatever the clocks and the file order say.
"""

from __future__ import annotations

import os
import random
import time

from shardline import (
    InitializationInput,
    LeaseLostInput,
    ProcessRecordsInput,
    RecordProcessor,
    ShardEndedInput,
    ShutdownError,
)
from shardline.checkpoint import Checkpointer

_DELAY = float(os.environ.get("CHAOS_DELAY", "0"))


def _emit(lines: list[str]) -> None:
    fd = os.open(os.environ["CHAOS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, "".join(lines).encode())
    finally:
        os.close(fd)


def _who() -> str:
    return f"{os.environ.get('CHAOS_WORKER', 'w')} {os.getpid()}"


class ChaosRecorder(RecordProcessor):
    """Records what it processes; checkpoints after every batch."""

    shard_id = "-"
    lease = "-"

    def initialize(self, initialization: InitializationInput) -> None:
        self.shard_id = initialization.shard_id
        self.lease = str(initialization.lease_counter)
        _emit([f"I {time.time():.6f} {_who()} {self.shard_id} {initialization.sequence_number} "
               f"{self.lease}\n"])  # fmt: skip

    def process_records(self, batch: ProcessRecordsInput) -> None:
        now, who = f"{time.time():.6f}", _who()
        lines = []
        for record in batch.records:
            image = record.new_image or record.old_image or {}
            lines.append(
                f"R {now} {who} {batch.shard_id} {record.sequence_number} "
                f"{record.keys['pk']} {image.get('version', 0)} {self.lease}\n"
            )
        _emit(lines)
        if _DELAY:
            time.sleep(random.uniform(0, _DELAY))
        if batch.records:
            self._checkpoint(batch.checkpointer, batch.records[-1].sequence_number)

    def lease_lost(self, lost: LeaseLostInput) -> None:
        _emit([f"L {time.time():.6f} {_who()} {lost.shard_id} {self.lease}\n"])

    def shard_ended(self, ended: ShardEndedInput) -> None:
        self._checkpoint(ended.checkpointer, "SHARD_END")
        _emit([f"E {time.time():.6f} {_who()} {ended.shard_id} {self.lease}\n"])

    def _checkpoint(self, checkpointer: Checkpointer, value: str) -> None:
        started = f"{time.time():.6f}"
        outcome = "ok"
        try:
            checkpointer.checkpoint()
        except ShutdownError:
            outcome = "refused"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            _emit([f"C {started} {time.time():.6f} {_who()} {self.shard_id} {value} {outcome} "
                   f"{self.lease}\n"])  # fmt: skip
