"""shardline: a KCL-grade Amazon DynamoDB Streams consumer in pure Python.

The public API is what ``__all__`` lists; everything else may change. Names are
imported lazily so that `shardline --help` does not pay for aiohttp and botocore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shardline._lazy import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "AsyncRecordProcessor": "shardline.processor",
    "AwsSettings": "shardline.aws.settings",
    "CheckpointDependencyError": "shardline.errors",
    "CheckpointError": "shardline.errors",
    "CheckpointThrottledError": "shardline.errors",
    "CheckpointValueError": "shardline.errors",
    "Checkpointer": "shardline.checkpoint",
    "ConfigError": "shardline.errors",
    "Consumer": "shardline.runner",
    "ConsumerConfig": "shardline.config",
    "InitializationInput": "shardline.processor",
    "InvalidStateError": "shardline.errors",
    "LeaseLostInput": "shardline.processor",
    "Metrics": "shardline.metrics",
    "ProcessRecordsInput": "shardline.processor",
    "RecordProcessor": "shardline.processor",
    "ShardEndedInput": "shardline.processor",
    "ShardlineError": "shardline.errors",
    "ShutdownError": "shardline.errors",
    "ShutdownRequestedInput": "shardline.processor",
    "StreamRecord": "shardline.records",
}

__all__ = [*sorted(_EXPORTS), "__version__"]

if TYPE_CHECKING:
    from shardline.aws.settings import AwsSettings
    from shardline.checkpoint import Checkpointer
    from shardline.config import ConsumerConfig
    from shardline.errors import (
        CheckpointDependencyError,
        CheckpointError,
        CheckpointThrottledError,
        CheckpointValueError,
        ConfigError,
        InvalidStateError,
        ShardlineError,
        ShutdownError,
    )
    from shardline.metrics import Metrics
    from shardline.processor import (
        AsyncRecordProcessor,
        InitializationInput,
        LeaseLostInput,
        ProcessRecordsInput,
        RecordProcessor,
        ShardEndedInput,
        ShutdownRequestedInput,
    )
    from shardline.records import StreamRecord
    from shardline.runner import Consumer


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
