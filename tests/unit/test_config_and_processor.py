from __future__ import annotations

import pytest

from shardline.config import ConsumerConfig
from shardline.errors import ConfigError
from shardline.processor import (
    AsyncFunctionProcessor,
    FunctionProcessor,
    RecordProcessor,
    processor_factory,
)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"table": None}, "exactly one of --table or --stream-arn"),
        ({"stream_arn": "arn:x"}, "exactly one of --table or --stream-arn"),
        ({"starting_position": "AT_TIMESTAMP"}, "starting position"),
        ({"failover_time": 0.1}, "failover time"),
        ({"max_records": 5000}, "max records"),
        ({"application": "x"}, "application name"),
        ({"max_leases": 0}, "max leases"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(
    changes: dict[str, object], message: str
) -> None:
    settings: dict[str, object] = {"application": "orders-sync", "table": "Orders", **changes}
    with pytest.raises(ConfigError, match=message):
        ConsumerConfig(**settings)  # type: ignore[arg-type]


def test_lease_table_defaults_to_application() -> None:
    config = ConsumerConfig(application="orders-sync", table="Orders")
    assert config.lease_table_name == "orders-sync"
    assert config.with_changes(lease_table="other").lease_table_name == "other"
    assert config.renew_interval == pytest.approx(10 / 3 - 0.025)
    assert config.take_interval == 1.0
    assert config.with_changes(failover_time=2.0).take_interval == 0.5
    assert config.with_changes(lease_scan_interval=5.0).take_interval == 5.0


def test_processor_factory_adapts_functions_and_classes() -> None:
    def handle(records: object) -> None: ...

    async def ahandle(records: object) -> None: ...

    class Mine(RecordProcessor):
        pass

    assert isinstance(processor_factory(handle)(), FunctionProcessor)
    assert isinstance(processor_factory(ahandle)(), AsyncFunctionProcessor)
    assert isinstance(processor_factory(Mine)(), Mine)
    with pytest.raises(ConfigError, match="not an instance"):
        processor_factory(Mine())
    with pytest.raises(ConfigError, match="not callable"):
        processor_factory(42)
    with pytest.raises(ConfigError, match="not a RecordProcessor"):
        processor_factory(dict)


def test_zero_argument_factories_and_async_callables() -> None:
    class Mine(RecordProcessor):
        def __init__(self, setting: str) -> None:
            self.setting = setting

    made = processor_factory(lambda: Mine("x"))()
    assert isinstance(made, Mine) and made.setting == "x"

    class AsyncHandler:
        async def __call__(self, records: object) -> None: ...

    assert isinstance(processor_factory(AsyncHandler())(), AsyncFunctionProcessor)
    with pytest.raises(ConfigError, match="factory returned"):
        processor_factory(lambda: 42)()
