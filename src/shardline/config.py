"""Frozen, validated settings for a consumer.

Every value is checked when the object is built, so a mistake surfaces at start-up as
one :class:`~shardline.errors.ConfigError` line rather than deep inside a running worker.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from shardline.aws.settings import AwsSettings
from shardline.errors import ConfigError

STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")


def default_worker_id() -> str:
    """A worker id unique per process, readable in `shardline status`: host, pid, random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class ConsumerConfig:
    """What one worker consumes and how it coordinates with the others.

    ``application`` names the lease table (as KCL's applicationName does) unless
    ``lease_table`` overrides it. Exactly one of ``table`` and ``stream_arn`` names the
    stream. Durations are in seconds. ``handoff_timeout``: how long a balance steal waits
    for the current owner to hand the lease over gracefully (0: take it at once).
    """

    application: str
    table: str | None = None
    stream_arn: str | None = None
    lease_table: str | None = None
    worker_id: str = field(default_factory=default_worker_id)
    starting_position: str = "TRIM_HORIZON"
    failover_time: float = 10.0
    idle_time: float = 0.5
    max_records: int = 1000
    max_leases: int | None = None
    max_leases_to_steal: int = 1
    handoff_timeout: float = 5.0
    shard_sync_interval: float = 60.0
    parent_poll_interval: float = 10.0
    shutdown_grace: float = 5.0
    retry_base_delay: float = 0.5
    retry_max_delay: float = 30.0
    processor_threads: int = 32
    call_process_records_even_for_empty_list: bool = False
    lease_scan_interval: float | None = None
    processor_timeout: float | None = 300.0
    cleanup_leases: bool = True
    aws: AwsSettings = field(default_factory=AwsSettings)

    def __post_init__(self) -> None:
        _check_name("application", self.application)
        if self.lease_table is not None:
            _check_name("lease table", self.lease_table)
        if (self.table is None) == (self.stream_arn is None):
            raise ConfigError("name the stream with exactly one of --table or --stream-arn")
        if self.table is not None:
            _check_name("table", self.table)
        if self.starting_position not in STARTING_POSITIONS:
            raise ConfigError(
                f"starting position {self.starting_position!r} is not one of "
                f"{', '.join(STARTING_POSITIONS)}"
            )
        _check_positive("failover time", self.failover_time, minimum=1.0)
        _check_positive("idle time", self.idle_time, minimum=0.0)
        _check_positive("shard sync interval", self.shard_sync_interval, minimum=1.0)
        _check_positive("parent poll interval", self.parent_poll_interval, minimum=0.05)
        _check_positive("shutdown grace", self.shutdown_grace, minimum=0.0)
        if not 1 <= self.max_records <= 1000:
            raise ConfigError(
                f"max records must be 1..1000 (GetRecords' limit), got {self.max_records}"
            )
        if self.max_leases is not None and self.max_leases < 1:
            raise ConfigError(f"max leases must be at least 1, got {self.max_leases}")
        if self.max_leases_to_steal < 0:
            raise ConfigError("max leases to steal must be 0 or more")
        _check_positive("handoff timeout", self.handoff_timeout, minimum=0.0)
        if not self.worker_id or len(self.worker_id) > 256:
            raise ConfigError("worker id must be 1..256 characters")
        if self.processor_timeout is not None and self.processor_timeout <= 0:
            raise ConfigError("processor timeout must be positive (or None for no warning)")
        if self.lease_scan_interval is not None and self.lease_scan_interval < 0.1:
            raise ConfigError("lease scan interval must be at least 0.1 seconds")
        if self.processor_threads < 1:
            raise ConfigError("processor threads must be at least 1")

    @property
    def lease_table_name(self) -> str:
        """The lease table: ``lease_table`` when set, else the application name."""
        return self.lease_table or self.application

    @property
    def renew_interval(self) -> float:
        """KCL renews every failover/3 minus an epsilon of 25 ms."""
        return max(self.failover_time / 3 - 0.025, 0.1)

    @property
    def take_interval(self) -> float:
        """How often the lease table is scanned for expired and released leases.

        KCL scans every 2 x failover. shardline scans at this pace (failover/4, at most
        every second) while something is due -- a lease unowned or expiring, a handoff
        pending, the fleet unbalanced -- and at :attr:`lease_scan_quiet_interval`
        otherwise (``leases/scan_pace.py``). ``lease_scan_interval`` fixes both. Each scan
        is one consistent Scan of the lease table.
        """
        if self.lease_scan_interval is not None:
            return self.lease_scan_interval
        return min(max(self.failover_time / 4, 0.25), 1.0)

    @property
    def lease_scan_quiet_interval(self) -> float:
        """How often the lease table is scanned while nothing is due: failover/4, at most
        1.5 s (so a released lease is still taken within 2 s, an expired one within
        failover + 3 s), never faster than :attr:`take_interval`; ``lease_scan_interval``
        when set."""
        if self.lease_scan_interval is not None:
            return self.lease_scan_interval
        from shardline.leases.scan_pace import default_pace  # the pace's own module

        return default_pace(self.failover_time, self.take_interval).quiet

    def with_changes(self, **changes: Any) -> ConsumerConfig:
        """A copy with some fields changed, validated again."""
        return replace(self, **changes)


def _check_name(what: str, value: str) -> None:
    if not _TABLE_NAME.match(value or ""):
        raise ConfigError(
            f"{what} name {value!r} is not a valid DynamoDB table name "
            "(3-255 characters: letters, digits, '_', '-', '.')"
        )


def _check_positive(what: str, value: float, *, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"{what} must be at least {minimum} seconds, got {value}")
