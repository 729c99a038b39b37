"""``DeliveryConfig``: Lambda's event-source-mapping controls, frozen and validated.

Names are Lambda's, in snake_case (``BatchSize`` → ``batch_size``). Every value is
checked when the object is built, so a mistake fails at start with one
:class:`~shardline.errors.ConfigError` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from shardline.delivery.destinations import parse_destination
from shardline.delivery.filters import FilterSet, normalize_filter_criteria
from shardline.errors import ConfigError


@dataclass(frozen=True)
class DeliveryConfig:
    """How records are batched, retried, filtered and given up on.

    ``filter_criteria`` accepts Lambda's ``{"Filters": [{"Pattern": "..."}]}``, a list of
    patterns (dicts or JSON strings) or one pattern; it is stored as a tuple of canonical
    JSON strings. ``on_failure`` is a destination URI (see :mod:`.destinations`).
    """

    batch_size: int = 100
    maximum_batching_window_in_seconds: float = 0.0
    maximum_retry_attempts: int = -1
    maximum_record_age_in_seconds: int = -1
    bisect_batch_on_function_error: bool = False
    on_failure: str | None = None
    report_batch_item_failures: bool = False
    parallelization_factor: int = 1
    filter_criteria: Any = None
    tumbling_window_in_seconds: int | None = None
    #: shardline's own: a batch is cut when its records' sizes reach this (0: no limit).
    maximum_batch_bytes: int = 0
    #: Set when a sink's :class:`~shardline.sinks.base.BatchHint` sized the batches: lifts
    #: Lambda's caps (10,000 records, 300 s) to 1,000,000 records and 3,600 s.
    sink_batching: bool = False
    filters: FilterSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        big = self.sink_batching
        _check_range("batch_size", self.batch_size, 1, 1_000_000 if big else 10_000)
        _check_range(
            "maximum_batching_window_in_seconds",
            self.maximum_batching_window_in_seconds,
            0,
            3600 if big else 300,
        )
        _check_range("maximum_batch_bytes", self.maximum_batch_bytes, 0, 1 << 40)
        _check_range("maximum_retry_attempts", self.maximum_retry_attempts, -1, 10_000)
        age = self.maximum_record_age_in_seconds
        _check_range("maximum_record_age_in_seconds", age, -1, 604_800)
        if age != -1 and age < 60:
            raise ConfigError(f"maximum_record_age_in_seconds must be -1 or 60..604800, got {age}")
        _check_range("parallelization_factor", self.parallelization_factor, 1, 10)
        if self.tumbling_window_in_seconds is not None:
            _check_range("tumbling_window_in_seconds", self.tumbling_window_in_seconds, 0, 900)
        if self.on_failure is not None:
            parse_destination(self.on_failure)
        self._check_limits_have_destination()
        self._check_window_combinations()
        patterns = normalize_filter_criteria(self.filter_criteria)
        object.__setattr__(self, "filter_criteria", patterns or None)
        object.__setattr__(self, "filters", FilterSet(patterns))

    @property
    def tumbling(self) -> bool:
        """Whether tumbling windows are on (a window of 0 seconds means off, as in Lambda)."""
        return bool(self.tumbling_window_in_seconds)

    @property
    def gives_up(self) -> bool:
        """Whether a failing batch can ever be given up on (sent to ``on_failure``)."""
        return self.maximum_retry_attempts != -1 or self.maximum_record_age_in_seconds != -1

    def with_changes(self, **changes: Any) -> DeliveryConfig:
        """A copy with some fields changed, validated again."""
        if "filter_criteria" not in changes:
            changes["filter_criteria"] = self.filter_criteria
        return replace(self, **changes)

    def _check_limits_have_destination(self) -> None:
        if self.gives_up and self.on_failure is None:
            raise ConfigError(
                "maximum_retry_attempts / maximum_record_age_in_seconds need an on_failure "
                "destination, so records given up on are kept (e.g. file:///var/lib/dlq)"
            )

    def _check_window_combinations(self) -> None:
        if self.tumbling and self.parallelization_factor > 1:
            raise ConfigError(
                "tumbling_window_in_seconds works with parallelization_factor 1 only "
                "(window state is per shard)"
            )
        if self.tumbling and self.bisect_batch_on_function_error:
            raise ConfigError(
                "tumbling_window_in_seconds cannot be combined with "
                "bisect_batch_on_function_error (a window is retried whole)"
            )


def _check_range(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be {low}..{high}, got {value}")
