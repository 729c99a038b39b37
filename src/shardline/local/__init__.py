"""The embedded local stack: moto's DynamoDB plus DynamoDB Streams with real shard lineage.

Importing this package does not touch moto; :meth:`LocalStack.start` patches it. Its
names are imported on first use, so ``shardline --help`` does not load the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shardline._lazy import lazy_getattr

if TYPE_CHECKING:
    from shardline.local.server import LocalStack, serve

__all__ = ["LocalStack", "serve"]

_EXPORTS = {"LocalStack": "shardline.local.server", "serve": "shardline.local.server"}

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
