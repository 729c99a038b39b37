"""Sink URLs and their options: ``postgresql://app@db/app?table=orders&snapshot=true``.

A sink is named by a URL; its options come from the URL's query or, in a pipeline file,
from keys beside ``url`` (the file wins). Options every sink understands:

``snapshot``   copy the whole table before following the stream (``true``/``false``)
``transform``  ``module:function``: a change to the document to write, or ``None`` to skip
``filter_criteria``  Lambda filter patterns for this sink only
``secret_env`` the environment variable holding the URL's password or secret

A secret is never written in a URL on the command line: ``secret_env=VAR`` names it.
Every secret a sink's URL or options carry (a URL's password, ``secret_env``'s value,
``secret=``, an ``Authorization`` header) is added to :data:`shardline.redact.SECRETS`
as it is read, so that no log line, error or metric shows it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from shardline.errors import ConfigError
from shardline.redact import SECRETS, redact_text, redact_url, secrets_in_options, secrets_in_url

__all__ = ["COMMON_OPTIONS", "SinkOptions", "mask_url", "parse_bool", "parse_sink_url"]

COMMON_OPTIONS = frozenset({"snapshot", "transform", "filter_criteria", "secret_env"})


@dataclass
class SinkOptions:
    """A sink URL taken apart: the URL without the options shardline reads, and the options.

    ``url`` keeps whatever query parameters the sink passes on (libpq's ``sslmode``, ...).
    """

    url: str
    scheme: str
    options: dict[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @property
    def name(self) -> str:
        """The URL as logs and errors show it: a password is masked."""
        return mask_url(self.url)

    def take(
        self, key: str, default: Any = None, convert: Callable[[Any], Any] | None = None
    ) -> Any:
        """Remove and return option ``key`` (converted), or ``default`` when absent."""
        if key not in self.options:
            return default
        value = self.options.pop(key)
        if convert is None:
            return value
        try:
            return convert(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"sink {self.name}: option {key}={value!r}: {exc}") from exc

    def secret(self) -> str | None:
        """The secret named by ``secret_env``; a missing variable is a :class:`ConfigError`."""
        variable = self.take("secret_env")
        if variable is None:
            return None
        value = self.environ.get(str(variable))
        if value is None:
            raise ConfigError(
                f"sink {self.name}: secret_env={variable} but the environment variable "
                f"{variable} is not set"
            )
        SECRETS.add(value, *secrets_in_options({"secret": value}))
        return value

    def reject_unknown(self, known: frozenset[str]) -> None:
        """Raise a :class:`ConfigError` naming any option nobody took."""
        unknown = sorted(set(self.options) - known - COMMON_OPTIONS)
        if unknown:
            raise ConfigError(
                f"sink {self.name}: unknown option(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known | COMMON_OPTIONS))})"
            )


def parse_sink_url(
    url: str,
    keep_query: frozenset[str] = frozenset(),
    extra: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> SinkOptions:
    """Split ``url`` into the URL a driver gets and shardline's options.

    Query parameters named in ``keep_query`` stay in the URL (driver parameters); all
    others become options. ``extra`` (a pipeline file's keys) overrides the query, and a
    driver parameter given there goes into the URL too.
    """
    if "://" not in url:
        raise ConfigError(
            f"sink {mask_url(url)!r} is not a URL (e.g. postgresql://user@host/db?table=t)"
        )
    parts = urlsplit(url)
    kept: dict[str, str] = {}
    options: dict[str, Any] = {}
    for key, value in [*parse_qsl(parts.query, keep_blank_values=True), *(extra or {}).items()]:
        if key in keep_query:
            kept[key] = str(value)
        else:
            options[key] = value
    SECRETS.add(*secrets_in_url(url), *secrets_in_options({**kept, **options}))
    query = urlencode(kept, quote_via=quote)  # values as they were sent, re-encoded
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return SinkOptions(
        bare, parts.scheme.lower(), options, os.environ if environ is None else environ
    )


def mask_url(url: str) -> str:
    """``url`` with the password (``user:secret@``) and secret-like query values masked.

    A libpq keyword DSN (``host=db password=secret``) gets its ``password=`` masked.
    """
    return redact_url(url) if "://" in url else redact_text(url)


def parse_bool(value: Any) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off) or a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")
