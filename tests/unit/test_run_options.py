"""Where `shardline run` options come from: flags > SHARDLINE_* > pipeline file > defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shardline.cli import _RUN_PARSERS, _parser
from shardline.delivery.settings import KEYS
from shardline.errors import ConfigError
from shardline.run_options import resolve_run

PIPELINE = """
[source]
table = "FromFile"
application = "app"

[worker]
failover_time = 20

[delivery]
batch_size = 500
maximum_retry_attempts = 3
on_failure = "file:///tmp/dlq"
"""


def resolve(words: list[str], environ: dict[str, str]) -> Any:
    args = _parser().parse_args(words)
    args.words = words
    return resolve_run(args, _RUN_PARSERS["run"]._actions, words, environ, KEYS)


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE)
    return str(path)


def test_the_file_fills_what_no_flag_gave(config: str) -> None:
    resolved = resolve(["run", "--config", config], {})
    assert resolved.args.table == "FromFile"
    assert resolved.args.failover_time == 20.0
    assert resolved.delivery == {
        "batch_size": 500, "maximum_retry_attempts": 3, "on_failure": "file:///tmp/dlq"
    }  # fmt: skip


def test_environment_beats_the_file_and_flags_beat_both(config: str) -> None:
    environ = {"SHARDLINE_BATCH_SIZE": "50", "SHARDLINE_FAILOVER_TIME": "15"}
    resolved = resolve(["run", "--config", config], environ)
    assert resolved.delivery["batch_size"] == 50
    assert resolved.args.failover_time == 15.0
    flags = ["run", "--config", config, "--batch-size", "7", "--failover-time=12"]
    resolved = resolve(flags, environ)
    assert resolved.delivery["batch_size"] == 7
    assert resolved.args.failover_time == 12.0


def test_delivery_flags_without_a_file_are_kept() -> None:
    words = ["run", "app:handle", "--table", "T", "--application", "a",
             "--maximum-retry-attempts", "1", "--on-failure", "file:///d",
             "--report-batch-item-failures"]  # fmt: skip
    resolved = resolve(words, {})
    assert resolved.delivery == {
        "maximum_retry_attempts": 1, "on_failure": "file:///d", "report_batch_item_failures": True
    }  # fmt: skip


def test_the_config_path_may_come_from_the_environment(config: str) -> None:
    resolved = resolve(["run"], {"SHARDLINE_CONFIG": config})
    assert resolved.args.table == "FromFile"


def test_bad_values_name_where_they_came_from(config: str) -> None:
    with pytest.raises(ConfigError, match=r"\$SHARDLINE_FAILOVER_TIME"):
        resolve(["run", "--config", config], {"SHARDLINE_FAILOVER_TIME": "soon"})
    with pytest.raises(ConfigError, match="starting_position"):
        resolve(["run", "--config", config], {"SHARDLINE_STARTING_POSITION": "MIDDLE"})
    with pytest.raises(ConfigError, match="--table or --stream-arn"):
        resolve(["run", "--application", "a"], {})
