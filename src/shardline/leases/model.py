"""The lease as shardline holds it in memory; one item of the KCL lease table."""

from __future__ import annotations

from dataclasses import dataclass

TRIM_HORIZON = "TRIM_HORIZON"
LATEST = "LATEST"
SHARD_END = "SHARD_END"
AT_TIMESTAMP = "AT_TIMESTAMP"
SENTINELS = frozenset({TRIM_HORIZON, LATEST, SHARD_END, AT_TIMESTAMP})


@dataclass(frozen=True, slots=True)
class Lease:
    """A KCL lease: ``key`` is the shard id in single-stream mode."""

    key: str
    owner: str | None = None
    counter: int = 0
    checkpoint: str = TRIM_HORIZON
    checkpoint_sub: int = 0
    owner_switches: int = 0
    parent_shard_ids: frozenset[str] = frozenset()
    child_shard_ids: frozenset[str] = frozenset()
    pending_checkpoint: str | None = None
    checkpoint_owner: str | None = None

    @property
    def actual_owner(self) -> str | None:
        """Who may process and checkpoint now: during a handoff the old owner
        (``checkpoint_owner``), otherwise ``owner``."""
        return self.checkpoint_owner or self.owner

    @property
    def handoff_pending(self) -> bool:
        """A graceful handoff was asked for: ``owner`` is the next owner."""
        return self.checkpoint_owner is not None

    @property
    def is_finished(self) -> bool:
        """KCL calls a lease finished once its checkpoint is SHARD_END."""
        return self.checkpoint == SHARD_END

    @property
    def has_started(self) -> bool:
        """A lease whose processing has begun: its checkpoint moved past the initial position."""
        return self.checkpoint not in (TRIM_HORIZON, LATEST, AT_TIMESTAMP)
