"""How to reach AWS (or the local stack): :class:`AwsSettings`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from shardline.aws.deadlines import LEASE_OPERATIONS, lease_call_deadline
from shardline.aws.transport.http import DEFAULT_MAX_BODY
from shardline.errors import ConfigError

__all__ = ["AwsSettings"]


@dataclass(frozen=True)
class AwsSettings:
    """How to reach AWS (or the local stack). ``None`` means: let botocore's chain decide.

    ``endpoint_url`` applies to both services; ``dynamodb_endpoint_url`` and
    ``streams_endpoint_url`` override it for the lease table and the stream. Left unset,
    botocore honours ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_DYNAMODB``,
    ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``, profiles and the FIPS/dual-stack settings.

    ``connect_timeout`` covers TCP connect and TLS handshake; ``read_timeout`` is the time
    from sending a request to having its complete answer (not a gap between reads); a
    call that passes either is retried like any connection failure, on a fresh connection.

    ``call_deadlines`` maps operation names to a deadline in seconds for the whole call,
    retries included; each attempt then gets at most half of it, so a request stuck on a
    dead connection is retried on a fresh one in time. :meth:`with_lease_deadlines` sets
    them for the lease-table writes and reads from the failover time. ``max_body`` caps
    an answer's size (as sent and decoded).
    """

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    dynamodb_endpoint_url: str | None = None
    streams_endpoint_url: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 8
    base_backoff: float = 0.05
    max_backoff: float = 5.0
    max_connections: int = 512
    max_body: int = DEFAULT_MAX_BODY
    call_deadlines: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError("connect_timeout and read_timeout must be positive")
        if self.base_backoff < 0 or self.max_backoff < self.base_backoff:
            raise ConfigError("backoff must satisfy 0 <= base_backoff <= max_backoff")
        if self.max_connections < 1:
            raise ConfigError(f"max_connections must be at least 1, got {self.max_connections}")
        if self.max_body < 1:
            raise ConfigError(f"max_body must be at least 1, got {self.max_body}")
        for operation, seconds in self.call_deadlines:
            if not seconds > 0:
                raise ConfigError(f"the deadline of {operation} must be positive, got {seconds}")

    def with_lease_deadlines(self, failover_time: float) -> AwsSettings:
        """These settings with a deadline of ``failover_time / 4`` on the lease-table item
        calls (:data:`LEASE_OPERATIONS`): a renewal or checkpoint finishes, or fails after
        retrying on a fresh connection, well inside the renew interval (failover / 3)."""
        deadline = lease_call_deadline(failover_time)
        others = tuple((op, s) for op, s in self.call_deadlines if op not in LEASE_OPERATIONS)
        lease = tuple((op, deadline) for op in sorted(LEASE_OPERATIONS))
        return replace(self, call_deadlines=others + lease)

    def deadline_for(self, operation: str) -> float | None:
        """The whole-call deadline of ``operation`` in seconds, or None (no deadline)."""
        for name, seconds in self.call_deadlines:
            if name == operation:
                return seconds
        return None

    def explicit_endpoint(self, service: str) -> str | None:
        """The endpoint these settings force for ``service``, or None to let botocore decide."""
        specific = (
            self.dynamodb_endpoint_url if service == "dynamodb" else self.streams_endpoint_url
        )
        return specific or self.endpoint_url
