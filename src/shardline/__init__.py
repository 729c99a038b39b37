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
    # `X as X` re-exports X for type checkers, which cannot read the computed __all__
    # (mypy --strict has no implicit re-export): `from shardline import Consumer` checks.
    from shardline.aws.settings import AwsSettings as AwsSettings
    from shardline.checkpoint import Checkpointer as Checkpointer
    from shardline.config import ConsumerConfig as ConsumerConfig
    from shardline.errors import CheckpointDependencyError as CheckpointDependencyError
    from shardline.errors import CheckpointError as CheckpointError
    from shardline.errors import CheckpointThrottledError as CheckpointThrottledError
    from shardline.errors import CheckpointValueError as CheckpointValueError
    from shardline.errors import ConfigError as ConfigError
    from shardline.errors import InvalidStateError as InvalidStateError
    from shardline.errors import ShardlineError as ShardlineError
    from shardline.errors import ShutdownError as ShutdownError
    from shardline.metrics import Metrics as Metrics
    from shardline.processor import AsyncRecordProcessor as AsyncRecordProcessor
    from shardline.processor import InitializationInput as InitializationInput
    from shardline.processor import LeaseLostInput as LeaseLostInput
    from shardline.processor import ProcessRecordsInput as ProcessRecordsInput
    from shardline.processor import RecordProcessor as RecordProcessor
    from shardline.processor import ShardEndedInput as ShardEndedInput
    from shardline.processor import ShutdownRequestedInput as ShutdownRequestedInput
    from shardline.records import StreamRecord as StreamRecord
    from shardline.runner import Consumer as Consumer


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
