"""The pipeline file: one TOML file that says what to read, how to deliver, where to write.

```toml
processor = "app:handle"            # optional when there are sinks

[source]
table = "Orders"                    # or stream_arn = "arn:aws:dynamodb:..."
application = "orders-pg"
endpoint_url = "http://127.0.0.1:4566"
starting_position = "TRIM_HORIZON"

[worker]                            # any other option of `shardline run`, snake_case
failover_time = 10
metrics_port = 9100

[delivery]                          # Lambda's names (see docs/delivery.md)
batch_size = 500

[[sinks]]
url = "postgresql://app@db:5432/app?table=orders"
snapshot = true                     # any URL query option may be a key here instead
secret_env = "PG_PASSWORD"
```

``${NAME}`` in any string is replaced by the environment variable ``NAME``; a missing
variable is a :class:`ConfigError` naming it, so secrets stay out of the file. Every
option of ``shardline run`` may also come from ``SHARDLINE_<OPTION>`` (e.g.
``SHARDLINE_TABLE``, ``SHARDLINE_FAILOVER_TIME``, ``SHARDLINE_SINK``). Precedence: flags,
then ``SHARDLINE_*`` variables, then the file, then the defaults
(:mod:`shardline.run_options` merges them).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shardline.errors import ConfigError

__all__ = ["Pipeline", "Source", "expand_env", "load_pipeline", "parse_pipeline"]

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SOURCE_KEYS = frozenset(
    {"table", "stream_arn", "application", "lease_table", "endpoint_url", "region", "profile",
     "starting_position", "worker_id"}
)  # fmt: skip
_SECTIONS = frozenset({"processor", "source", "worker", "delivery", "sinks"})


@dataclass(frozen=True)
class Source:
    """The ``[source]`` table: the stream to read and the lease table's application."""

    table: str | None = None
    stream_arn: str | None = None
    application: str | None = None
    lease_table: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None


@dataclass
class Pipeline:
    """A pipeline file, read and checked (sinks are built by :meth:`build_sinks`).

    ``options`` maps ``shardline run`` option names (snake_case) to values: the
    ``[source]`` and ``[worker]`` keys and ``processor``. ``sink_specs`` keeps each
    ``[[sinks]]`` entry as (url, other keys).
    """

    path: str
    options: dict[str, Any] = field(default_factory=dict)
    delivery_settings: dict[str, Any] = field(default_factory=dict)
    sink_specs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def source(self) -> Source:
        """The ``[source]`` settings."""
        o = self.options
        return Source(**{k: o.get(k) for k in Source.__dataclass_fields__})

    @property
    def delivery(self) -> Any:
        """The ``[delivery]`` settings as a :class:`~shardline.delivery.DeliveryConfig`, or None."""
        if not self.delivery_settings:
            return None
        from shardline.delivery.config import DeliveryConfig

        return DeliveryConfig(**self.delivery_settings)

    @property
    def sinks(self) -> list[Any]:
        """The sinks of ``[[sinks]]``, built (see :func:`shardline.sinks.sink_from_url`)."""
        return self.build_sinks()

    def build_sinks(self, environ: Mapping[str, str] | None = None) -> list[Any]:
        """Build every ``[[sinks]]`` entry; a bad one is a :class:`ConfigError` naming it."""
        from shardline.sinks.registry import sink_from_url

        return [sink_from_url(url, extra, environ) for url, extra in self.sink_specs]


def load_pipeline(path: str, environ: Mapping[str, str] | None = None) -> Pipeline:
    """Read and check a pipeline file (``${NAME}`` expanded from ``environ``)."""
    import os

    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"pipeline file {path} is not valid TOML: {exc}") from exc
    return parse_pipeline(document, path, os.environ if environ is None else environ)


def parse_pipeline(document: dict[str, Any], path: str, environ: Mapping[str, str]) -> Pipeline:
    """A parsed TOML document as a :class:`Pipeline` (see the module's docstring)."""
    document = expand_env(document, environ, path)
    unknown = sorted(set(document) - _SECTIONS)
    if unknown:
        raise ConfigError(
            f"pipeline file {path}: unknown key(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_SECTIONS))})"
        )
    pipeline = Pipeline(path)
    source = _table(document, "source", path)
    bad = sorted(set(source) - SOURCE_KEYS)
    if bad:
        raise ConfigError(
            f"pipeline file {path}: [source] has unknown key(s) {', '.join(bad)} "
            f"(known: {', '.join(sorted(SOURCE_KEYS))}; other options go in [worker])"
        )
    pipeline.options.update(source)
    pipeline.options.update(_table(document, "worker", path))
    if "processor" in document:
        pipeline.options["processor"] = document["processor"]
    pipeline.delivery_settings = _delivery(document, path)
    pipeline.sink_specs = _sinks(document, path)
    return pipeline


def _table(document: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"pipeline file {path}: [{name}] must be a table")
    return dict(value)


def _delivery(document: dict[str, Any], path: str) -> dict[str, Any]:
    from shardline.delivery.settings import KEYS

    settings = _table(document, "delivery", path)
    unknown = sorted(set(settings) - KEYS)
    if unknown:
        raise ConfigError(
            f"pipeline file {path}: [delivery] has unknown key(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(KEYS))})"
        )
    return settings


def _sinks(document: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    entries = document.get("sinks", [])
    if not isinstance(entries, list):
        raise ConfigError(f"pipeline file {path}: sinks must be an array of tables ([[sinks]])")
    specs = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ConfigError(f'pipeline file {path}: sink #{number} needs url = "..."')
        extra = {k: v for k, v in entry.items() if k != "url"}
        specs.append((entry["url"], extra))
    return specs


def expand_env(value: Any, environ: Mapping[str, str], path: str = "pipeline") -> Any:
    """``value`` with every ``${NAME}`` in its strings replaced from ``environ``."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: _variable(m.group(1), environ, path), value)
    if isinstance(value, dict):
        return {k: expand_env(v, environ, path) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ, path) for v in value]
    return value


def _variable(name: str, environ: Mapping[str, str], path: str) -> str:
    if name not in environ:
        raise ConfigError(f"{path}: ${{{name}}} is used but the environment variable is not set")
    return environ[name]
