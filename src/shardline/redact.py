"""Mask secrets before text is printed, logged or exported.

- :func:`redact_url`: the password of ``scheme://user:password@host`` and the values of
  secret-looking query parameters (``password=``, ``secret=``, ``token=``, signatures...).
- :func:`redact_text`: every URL in a text as above, ``key=value`` / ``key: value`` pairs
  whose key names a secret (DSN ``password=``, ``aws_secret_access_key``,
  ``X-Amz-Security-Token``...), AWS access key ids (``AKIA...``, ``ASIA...``), and any
  ``known`` secret values given (e.g. the credentials in use).

Masked values read ``***``. Pure functions, cheap enough for error paths; do not call them
per record on a hot path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "redact_text", "redact_url"]

MASK: Final = "***"

_SECRET_KEY_WORDS: Final = (
    "password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|"
    "signature|sig|credential|auth|authorization|private[_-]?key|session[_-]?token"
)
_SECRET_NAME: Final = re.compile(
    rf"(?:{_SECRET_KEY_WORDS})$|^(?:x-amz-(?:security-token|signature|credential))$",
    re.IGNORECASE,
)
# key=value or key: value where the key ends in a secret word (aws_secret_access_key,
# X-Amz-Security-Token, password, webhook_secret...); the value runs to a separator.
_PAIR: Final = re.compile(
    rf"(?P<key>\b[\w.-]*(?:{_SECRET_KEY_WORDS}))(?P<sep>\s*[=:]\s*)"
    r"(?P<quote>[\"']?)(?P<value>[^\s\"'&,;]+)",
    re.IGNORECASE,
)
_URL: Final = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
_ACCESS_KEY_ID: Final = re.compile(
    r"\b(?P<prefix>AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA|ABIA|ACCA)[A-Z0-9]{16}\b"
)


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values masked; other parts unchanged."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # e.g. an invalid port: mask what looks like user:password@
        return re.sub(r"(//[^/@:\s]*:)[^/@\s]*@", rf"\g<1>{MASK}@", url)
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{MASK}@{host}"
    query = "&".join(_redact_param(param) for param in parts.query.split("&"))
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_param(param: str) -> str:
    name, sep, value = param.partition("=")
    if sep and value and _SECRET_NAME.search(name):
        return f"{name}={MASK}"
    return param


def redact_text(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` with URLs, secret ``key=value`` pairs, AWS key ids and ``known`` masked.

    ``known`` values shorter than 4 characters are ignored (masking them would garble
    ordinary words).
    """
    for secret in sorted((s for s in known if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL.sub(lambda match: redact_url(match[0]), text)
    text = _PAIR.sub(_mask_pair, text)
    return _ACCESS_KEY_ID.sub(lambda match: f"{match['prefix']}{MASK}", text)


def _mask_pair(match: re.Match[str]) -> str:
    if match["value"] == MASK or match["value"].startswith(MASK):
        return match[0]
    return f"{match['key']}{match['sep']}{match['quote']}{MASK}"
