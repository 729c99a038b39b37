"""Optional dependencies ("extras"): one clear line when one is missing.

Code that needs a package from an extra imports it through :func:`require` at the
moment it needs it (never at import time of a module ``shardline --help`` loads)::

    from shardline.extras import require

    psycopg = require("psycopg", "postgres", feature="the postgres sink")

When the package (or anything it imports) is not installed, :func:`require` raises
:class:`MissingExtraError`, a :class:`~shardline.errors.ConfigError`: the CLI prints its
one line and exits 2, e.g. ``shardline: error: the local stack needs the 'local' extra
(moto is not installed): pip install 'shardline[local]'``. A missing module inside
shardline itself is a bug, not a missing extra, and is raised unchanged.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from shardline.errors import ConfigError

__all__ = ["MissingExtraError", "install_hint", "require"]


class MissingExtraError(ConfigError):
    """A package of an optional extra is not installed; the message says what to install."""

    def __init__(self, extra: str, missing: str, feature: str) -> None:
        self.extra = extra
        self.missing = missing
        super().__init__(
            f"{feature} needs the {extra!r} extra ({missing} is not installed): "
            f"{install_hint(extra)}"
        )


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'shardline[extra]'``."""
    return f"pip install 'shardline[{extra}]'"


def require(module: str, extra: str, *, feature: str | None = None) -> ModuleType:
    """Import and return ``module`` (dotted name) from the optional ``extra``.

    Raises :class:`MissingExtraError` naming ``pip install 'shardline[<extra>]'`` when
    ``module`` or a third-party package it imports is missing. ``feature`` names what
    needs it in the message (default: ``module``).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        if missing.partition(".")[0] == "shardline":
            raise
        raise MissingExtraError(extra, missing, feature or module) from exc
