"""One shard lease's consumer: :class:`ShardConsumer` (the state machine), its
:class:`~shardline.consumer.reader.ShardReader` (iterators, pages, trim and expiry
recovery) and its :class:`~shardline.consumer.lane.ProcessorLane` (processor calls,
retries, checkpoints)."""

from shardline.consumer.host import ConsumerSettings, ShardHost
from shardline.consumer.shard import ShardConsumer
from shardline.consumer.state import ConsumerState, EndReason

__all__ = ["ConsumerSettings", "ConsumerState", "EndReason", "ShardConsumer", "ShardHost"]
