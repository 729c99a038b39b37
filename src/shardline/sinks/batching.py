"""Pure: the delivery settings of a run whose sinks ask for batch sizes (contract rule 7)."""

from __future__ import annotations

from collections.abc import Sequence

from shardline.delivery.config import DeliveryConfig
from shardline.errors import ConfigError
from shardline.sinks.base import BatchHint, Sink

__all__ = ["apply_batch_hints", "merged_hint"]

_DEFAULT = DeliveryConfig()


def merged_hint(hints: Sequence[BatchHint]) -> BatchHint | None:
    """One hint from several: the smallest wish of each kind; ordered if any is."""
    if not hints:
        return None

    def smallest(values: list[float | None]) -> float | None:
        wishes = [v for v in values if v is not None]
        return min(wishes) if wishes else None

    records = smallest([h.records for h in hints])
    size = smallest([h.bytes for h in hints])
    return BatchHint(
        records=None if records is None else int(records),
        bytes=None if size is None else int(size),
        seconds=smallest([h.seconds for h in hints]),
        ordered=any(h.ordered for h in hints),
    )


def apply_batch_hints(config: DeliveryConfig, sinks: Sequence[Sink]) -> DeliveryConfig:
    """``config`` sized by the sinks' hints where the user left the defaults.

    ``batch_size`` and ``maximum_batching_window_in_seconds`` are taken from the hint only
    when both are at their defaults (100, 0): a user's own setting wins. An ``ordered``
    hint with ``parallelization_factor`` above 1 is a :class:`ConfigError`.
    """
    hints = [s.batch_hint for s in sinks if s.batch_hint is not None]
    hint = merged_hint(hints)
    if hint is None:
        return config
    if hint.ordered and config.parallelization_factor > 1:
        names = ", ".join(s.name for s in sinks if s.batch_hint and s.batch_hint.ordered)
        raise ConfigError(
            f"sink {names}: needs parallelization_factor 1 (it writes each shard's "
            f"changes in sequence order), got {config.parallelization_factor}"
        )
    untouched = (
        config.batch_size == _DEFAULT.batch_size
        and config.maximum_batching_window_in_seconds == _DEFAULT.maximum_batching_window_in_seconds
    )
    if not untouched:
        return config
    changes: dict[str, object] = {"sink_batching": True}
    if hint.records is not None:
        changes["batch_size"] = hint.records
    if hint.seconds is not None:
        changes["maximum_batching_window_in_seconds"] = hint.seconds
    if hint.bytes is not None and not config.maximum_batch_bytes:
        changes["maximum_batch_bytes"] = hint.bytes
    return config.with_changes(**changes)
