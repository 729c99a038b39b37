"""Where each option of ``shardline run`` comes from: flags, ``SHARDLINE_*``, the pipeline file.

Precedence, highest first: a flag on the command line, the ``SHARDLINE_<OPTION>``
environment variable, the pipeline file (``--config``), the flag's default. Sinks add up:
every ``[[sinks]]`` of the file and every ``--sink`` (or ``SHARDLINE_SINK``, URLs
separated by spaces) are run.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shardline.errors import ConfigError
from shardline.pipeline import Pipeline, load_pipeline
from shardline.sinks.options import parse_bool

__all__ = ["ResolvedRun", "resolve_run"]

ENV_PREFIX = "SHARDLINE_"


class ResolvedRun:
    """The merged namespace, the pipeline file (if any) and the delivery settings."""

    def __init__(
        self, args: argparse.Namespace, pipeline: Pipeline | None, delivery: dict[str, Any]
    ) -> None:
        self.args = args
        self.pipeline = pipeline
        self.delivery = delivery

    def sinks(self, environ: Mapping[str, str]) -> list[Any]:
        """The file's sinks, then the ``--sink`` ones; ``--snapshot`` turns snapshot on for all."""
        from shardline.sinks.registry import sink_from_url

        sinks = self.pipeline.build_sinks(environ) if self.pipeline else []
        sinks += [sink_from_url(url, None, environ) for url in self.args.sink or []]
        if getattr(self.args, "snapshot", False):
            for sink in sinks:
                sink.snapshot = True
        return sinks


def resolve_run(
    args: argparse.Namespace,
    actions: Iterable[argparse.Action],
    words: Sequence[str],
    environ: Mapping[str, str],
    delivery_keys: frozenset[str],
) -> ResolvedRun:
    """Fill ``args`` from the environment and the pipeline file where no flag was given."""
    config = args.config if _given_flag("--config", words) else environ.get(ENV_PREFIX + "CONFIG")
    config = config or args.config
    pipeline = load_pipeline(config, environ) if config else None
    file_values = dict(pipeline.options) if pipeline else {}
    delivery = dict(pipeline.delivery_settings) if pipeline else {}
    for action in actions:
        dest = action.dest
        if dest in ("help", "config"):
            continue
        if not _explicit(action, args, words):
            _fill(args, action, environ, file_values)
        if dest in delivery_keys and getattr(args, dest) is not None:
            delivery[dest] = _delivery_value(dest, getattr(args, dest))
    _require_source(args)
    return ResolvedRun(args, pipeline, delivery)


def _fill(
    args: argparse.Namespace,
    action: argparse.Action,
    environ: Mapping[str, str],
    file_values: dict[str, Any],
) -> None:
    """Set an option no flag gave: from ``SHARDLINE_<OPTION>``, else from the file."""
    value = _from_env(action, environ)
    if value is not None:
        setattr(args, action.dest, value)
    elif action.dest in file_values:
        value = _convert(action, file_values[action.dest], "the pipeline file")
        setattr(args, action.dest, value)


def _given_flag(flag: str, words: Sequence[str]) -> bool:
    return any(w == flag or w.startswith(flag + "=") for w in words)


def _explicit(action: argparse.Action, args: argparse.Namespace, words: Sequence[str]) -> bool:
    if not action.option_strings:  # the positional processor
        return getattr(args, action.dest) is not None
    return any(_given_flag(flag, words) for flag in action.option_strings)


def _from_env(action: argparse.Action, environ: Mapping[str, str]) -> Any:
    name = ENV_PREFIX + action.dest.upper()
    text = environ.get(name)
    if text is None or text == "":
        return None
    if action.dest == "sink":
        return text.split()
    if action.dest == "filter_criteria":
        return [text]
    return _convert(action, text, f"${name}")


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    name = action.dest
    try:
        if isinstance(action, argparse._StoreTrueAction):
            return parse_bool(value)
        if action.type is not None and callable(action.type):
            value = action.type(value)
        elif isinstance(value, str | int | float) and name not in ("filter_criteria", "sink"):
            value = str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {name} = {value!r} is not valid: {exc}") from exc
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {name} = {value!r} is not one of {choices}")
    return value


def _delivery_value(name: str, value: Any) -> Any:
    if (
        name == "filter_criteria"
        and isinstance(value, list)
        and all(isinstance(v, str) for v in value)
    ):
        from shardline.delivery.settings import _filters_from_flags

        return _filters_from_flags(value)
    return value


def _require_source(args: argparse.Namespace) -> None:
    if (args.table is None) == (args.stream_arn is None):
        raise ConfigError(
            "give exactly one of --table or --stream-arn ([source] table or stream_arn in "
            "the pipeline file, or SHARDLINE_TABLE)"
        )
    if not args.application:
        raise ConfigError(
            "give --application ([source] application in the pipeline file, or "
            "SHARDLINE_APPLICATION): it names the lease table"
        )
