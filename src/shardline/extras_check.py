"""One clear line when an optional dependency (an extra) is not installed."""

from __future__ import annotations

import importlib.util

from shardline.errors import ConfigError

__all__ = ["require"]


def require(module: str, extra: str) -> None:
    """Raise :class:`ConfigError` naming ``pip install 'shardline[extra]'`` when ``module``
    cannot be imported."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"this needs the {module} package: pip install 'shardline[{extra}]'")
