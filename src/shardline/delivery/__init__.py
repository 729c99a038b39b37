"""Lambda's event-source-mapping controls for any handler, and Lambda handlers unchanged.

```python
from shardline.delivery import DeliveryConfig, wrap_processor

config = DeliveryConfig(batch_size=500, maximum_retry_attempts=3,
                        bisect_batch_on_function_error=True,
                        on_failure="arn:aws:sqs:us-east-1:123456789012:orders-dlq")
factory = wrap_processor(handle, config, stream_arn=arn)
```

See ``docs/delivery.md`` for every control and its exact behaviour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shardline._lazy import lazy_getattr

_EXPORTS = {
    "DeliveryConfig": "shardline.delivery.config",
    "DeliveryProcessor": "shardline.delivery.processor",
    "DeliverySettings": "shardline.delivery.processor",
    "TumblingWindow": "shardline.delivery.invoke",
    "add_delivery_arguments": "shardline.delivery.settings",
    "delivery_from_args": "shardline.delivery.settings",
    "delivery_from_toml": "shardline.delivery.settings",
    "fail_fast": "shardline.delivery.wrap",
    "parse_destination": "shardline.delivery.destinations",
    "wrap_processor": "shardline.delivery.wrap",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    # `X as X` re-exports X for type checkers, which cannot read the computed __all__ (mypy
    # --strict has no implicit re-export): `from shardline.delivery import wrap_processor`.
    from shardline.delivery.config import DeliveryConfig as DeliveryConfig
    from shardline.delivery.destinations import parse_destination as parse_destination
    from shardline.delivery.invoke import TumblingWindow as TumblingWindow
    from shardline.delivery.processor import DeliveryProcessor as DeliveryProcessor
    from shardline.delivery.processor import DeliverySettings as DeliverySettings
    from shardline.delivery.settings import add_delivery_arguments as add_delivery_arguments
    from shardline.delivery.settings import delivery_from_args as delivery_from_args
    from shardline.delivery.settings import delivery_from_toml as delivery_from_toml
    from shardline.delivery.wrap import fail_fast as fail_fast
    from shardline.delivery.wrap import wrap_processor as wrap_processor


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
