"""Importing a user's ``module:attribute`` (processors, transforms), with one-line errors."""

from __future__ import annotations

import importlib
import os
import sys

from shardline.errors import ConfigError

__all__ = ["import_attribute"]


def import_attribute(spec: str, what: str = "processor") -> object:
    """Import ``module:attribute`` (the current directory is on the path).

    ``what`` names the thing in errors (``processor``, ``sink ...: transform``).
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{what} {spec!r} must look like module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {what} module {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError as exc:
        raise ConfigError(f"module {module_name!r} has no attribute {attribute!r}") from exc
