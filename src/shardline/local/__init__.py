"""The embedded local stack: moto's DynamoDB plus DynamoDB Streams with real shard lineage.

Importing this package does not touch moto; :meth:`LocalStack.start` patches it.
"""

from __future__ import annotations

from shardline.local.server import LocalStack, serve

__all__ = ["LocalStack", "serve"]
