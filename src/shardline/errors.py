"""One exception tree for shardline, rooted at :class:`ShardlineError`.

Every class says whether retrying the same call may succeed (``retriable``).
AWS error codes are mapped onto this tree in one place:
:func:`shardline.aws.errors.error_from_response`.
"""

from __future__ import annotations


class ShardlineError(Exception):
    """Base of every error shardline raises."""

    retriable: bool = False


class ConfigError(ShardlineError):
    """A mistake in the user's settings or command line; the CLI exits 2 with one line."""


# --- AWS service errors -----------------------------------------------------------


class AwsError(ShardlineError):
    """An error answered by an AWS service (or the local stack)."""

    def __init__(self, code: str, message: str, *, status: int = 400, operation: str = "") -> None:
        self.code = code
        self.message = message
        self.status = status
        self.operation = operation
        where = f"{operation}: " if operation else ""
        super().__init__(f"{where}{code}: {message}")


class ThrottledError(AwsError):
    """LimitExceededException, ThrottlingException, ProvisionedThroughputExceededException."""

    retriable = True


class ServiceUnavailableError(AwsError):
    """HTTP 5xx from the service."""

    retriable = True


class ResourceNotFoundError(AwsError):
    """The table, stream, shard or item does not exist."""


class ResourceInUseError(AwsError):
    """The resource exists already, or is being created or deleted."""


class ValidationError(AwsError):
    """The request was malformed: a bug in shardline or a bad argument."""


class ExpiredIteratorError(AwsError):
    """The shard iterator is older than 15 minutes (or unknown to the service)."""


class TrimmedDataAccessError(AwsError):
    """The requested records are older than the stream's 24-hour retention."""


class ConditionalCheckFailedError(AwsError):
    """A conditional write lost its race: for leases, someone else moved the counter."""


class AccessDeniedError(AwsError):
    """The credentials are valid but lack a permission."""


class CredentialsError(ShardlineError):
    """No credentials were found, or the service rejected them."""


class ConnectionFailedError(ShardlineError):
    """The endpoint could not be reached (refused, reset, timed out)."""

    retriable = True


# --- checkpoint errors (names mirror KCL's, which MultiLang clients expect) --------


class CheckpointError(ShardlineError):
    """Base of the errors a checkpoint call can raise."""

    kcl_name = "KinesisClientLibDependencyException"


class ShutdownError(CheckpointError):
    """The lease is no longer held by this worker; KCL's ShutdownException."""

    kcl_name = "ShutdownException"


class InvalidStateError(CheckpointError):
    """No checkpointer is available now, or the lease table is missing."""

    kcl_name = "InvalidStateException"


class CheckpointValueError(CheckpointError, ValueError):
    """The value is out of range or malformed; KCL's IllegalArgumentException."""

    kcl_name = "IllegalArgumentException"


class CheckpointThrottledError(CheckpointError):
    """The lease table throttled the checkpoint write; retry later."""

    kcl_name = "ThrottlingException"
    retriable = True


class CheckpointDependencyError(CheckpointError):
    """Any other failure of the lease table while checkpointing."""

    kcl_name = "KinesisClientLibDependencyException"
    retriable = True


class LeaseTableError(ShardlineError):
    """The lease table exists but is not a KCL lease table, or belongs to another stream."""


class WorkerFailedError(ShardlineError):
    """A worker stopped itself: one of its background loops kept failing."""
