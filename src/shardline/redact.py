"""Mask secrets before text is printed, logged or exported.

- :func:`redact_url`: the password of ``scheme://user:password@host`` and the values of
  secret-looking query parameters (``password=``, ``secret=``, ``token=``, signatures...).
- :func:`redact_text`: every URL in a text as above, ``key=value`` / ``key: value`` pairs
  whose key names a secret (DSN ``password=``, ``aws_secret_access_key``,
  ``X-Amz-Security-Token``, ``Authorization: Bearer ...``), AWS access key ids
  (``AKIA...``, ``ASIA...``), and any ``known`` secret values given.
- :data:`SECRETS`: the secret values of this process (the AWS credentials in use, sink
  passwords and webhook secrets, secret-named environment variables), collected as they
  are read; :meth:`KnownSecrets.redact` masks them wherever they appear, then applies
  :func:`redact_text`. Log formatters, CLI errors, ``shardline status``, ``/metrics`` and
  ``/health`` all go through it.
- :func:`secrets_in_environ`, :func:`secrets_in_url`, :func:`secrets_in_options`: pure
  finders of the secret values in an environment, a URL and a sink's options.

Masked values read ``***``. Cheap enough for log lines and error paths; do not call them
per record on a hot path.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "MIN_KNOWN_LENGTH",
    "SECRETS",
    "KnownSecrets",
    "is_secret_name",
    "redact_text",
    "redact_url",
    "secrets_in_environ",
    "secrets_in_options",
    "secrets_in_url",
]

MASK: Final = "***"
#: Known values shorter than this are not masked wherever they appear (they are too short
#: to tell from ordinary words: ``test``, ``local``); they are still masked where they
#: stand as a secret (``user:pw@host``, ``password=pw``).
MIN_KNOWN_LENGTH: Final = 8

_SECRET_KEY_WORDS: Final = (
    "password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|"
    "signature|sig|credential|auth|authorization|private[_-]?key|session[_-]?token"
)
_SECRET_NAME: Final = re.compile(
    rf"(?:{_SECRET_KEY_WORDS})$|^(?:x-amz-(?:security-token|signature|credential))$",
    re.IGNORECASE,
)
#: Query parameters that carry a credential although their name says little
#: (Azure Functions' ``code=``, Google-style ``key=``).
_SECRET_PARAMS: Final = frozenset({"code", "key"})
#: Environment variables whose names end like a secret's but hold none.
_NOT_SECRET_VARIABLES: Final = frozenset({"PWD", "OLDPWD"})
# key=value or key: value where the key ends in a secret word (aws_secret_access_key,
# X-Amz-Security-Token, password, webhook_secret...), quoted too ('password': 'x' in a
# dict's repr or JSON); the value runs to a separator, and
# an HTTP auth scheme before it (Authorization: Bearer xyz) is kept, the credential masked.
_PAIR: Final = re.compile(
    rf"(?P<key>\b[\w.-]*(?:{_SECRET_KEY_WORDS}))(?P<sep>[\"']?\s*[=:]\s*)"
    r"(?P<quote>[\"']?)(?P<scheme>(?:basic|bearer|digest|token)\s+)?(?P<value>[^\s\"'&,;]+)",
    re.IGNORECASE,
)
_URL: Final = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
_ACCESS_KEY_ID: Final = re.compile(
    r"\b(?P<prefix>AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA|ABIA|ACCA)[A-Z0-9]{16}\b"
)


def is_secret_name(name: str) -> bool:
    """Whether a key, header, query parameter or variable named ``name`` holds a secret."""
    return bool(_SECRET_NAME.search(name))


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


def _is_secret_param(name: str) -> bool:
    return is_secret_name(name) or name.lower() in _SECRET_PARAMS


def _redact_param(param: str) -> str:
    name, sep, value = param.partition("=")
    if sep and value and _is_secret_param(name):
        return f"{name}={MASK}"
    return param


def redact_text(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` with URLs, secret ``key=value`` pairs, AWS key ids and ``known`` masked.

    ``known`` values shorter than 4 characters are ignored (masking them would garble
    ordinary words).
    """
    for secret in sorted((s for s in known if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _redact_patterns(text)


def _redact_patterns(text: str) -> str:
    text = _URL.sub(lambda match: redact_url(match[0]), text)
    text = _PAIR.sub(_mask_pair, text)
    return _ACCESS_KEY_ID.sub(lambda match: f"{match['prefix']}{MASK}", text)


def _mask_pair(match: re.Match[str]) -> str:
    if match["value"].startswith(MASK):
        return match[0]
    return f"{match['key']}{match['sep']}{match['quote']}{match['scheme'] or ''}{MASK}"


# --- the secrets of this process -------------------------------------------------------


class KnownSecrets:
    """Secret values to mask wherever they appear, collected as the process reads them.

    Adding is thread-safe and idempotent; each value is also kept as it is printed
    percent-encoded and escaped (JSON, ``repr``). Values shorter than
    :data:`MIN_KNOWN_LENGTH` are not kept.
    """

    def __init__(self) -> None:
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        """Remember ``values`` (``None`` and short values are skipped)."""
        new = {
            spelling
            for value in values
            if value and len(value) >= MIN_KNOWN_LENGTH
            for spelling in _spellings(value)
        }
        with self._lock:
            if new <= self._values:
                return
            self._values |= new
            longest_first = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, longest_first)))

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def mask(self, text: str) -> str:
        """``text`` with every known value masked (and nothing else)."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

    def redact(self, text: str) -> str:
        """``text`` with the known values masked, then :func:`redact_text`'s patterns."""
        return _redact_patterns(self.mask(text))

    def redact_value(self, value: Any) -> Any:
        """``value`` as plain JSON-able data with :meth:`redact` applied to every string in
        it: dicts and lists are walked (a string under a secret-named key is masked whole),
        numbers, booleans and ``None`` kept, and anything else becomes its masked ``str``."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {str(key): self._redact_item(str(key), item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(item) for item in value]
        return self.redact(str(value))

    def _redact_item(self, key: str, item: Any) -> Any:
        if isinstance(item, str) and item and is_secret_name(key):
            return MASK
        return self.redact_value(item)


#: The secrets of this process: log formatters, CLI output and the metrics endpoint mask
#: them. Whoever reads a secret adds it (sink options, AWS credentials, the CLI's
#: environment).
SECRETS: Final = KnownSecrets()


def _spellings(value: str) -> set[str]:
    """``value`` as it may be printed: as is, percent-encoded, JSON- and repr-escaped."""
    return {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        repr(value)[1:-1],
    }


def secrets_in_environ(environ: Mapping[str, str]) -> list[str]:
    """Values of secret-named variables (``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
    ``PGPASSWORD``, ``*_TOKEN``...), ``AWS_ACCESS_KEY_ID``, and the passwords of URLs in
    any variable (``HTTPS_PROXY=http://user:password@proxy``)."""
    found: list[str] = []
    for name, value in environ.items():
        if name.upper() in _NOT_SECRET_VARIABLES:
            continue
        if is_secret_name(name) or name.upper() == "AWS_ACCESS_KEY_ID":
            found.append(value)
        elif "://" in value:
            found.extend(secrets_in_url(value))
    return found


def secrets_in_url(url: str) -> list[str]:
    """The password of ``url`` (as written and decoded), the ``Authorization: Basic``
    token it makes, and the values of secret query parameters; for a libpq keyword DSN
    (``host=db password=pw``), its password."""
    if "://" not in url:
        return [_unquote_keyword(m["value"]) for m in _KEYWORD_PASSWORD.finditer(url)]
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return []
    found: list[str] = []
    if password:
        found += [password, unquote(password)]
        pair = f"{unquote(user or '')}:{unquote(password)}".encode()
        found.append(base64.b64encode(pair).decode("ascii"))
    query = parse_qsl(parts.query, keep_blank_values=False)
    found += [value for name, value in query if _is_secret_param(name)]
    return found


_KEYWORD_PASSWORD: Final = re.compile(
    r"(?:^|\s)(?:ssl)?password\s*=\s*(?P<value>'(?:[^'\\]|\\.)*'|[^\s']+)"
)


def _unquote_keyword(value: str) -> str:
    if value.startswith("'") and value.endswith("'"):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def secrets_in_options(options: Mapping[str, Any]) -> list[str]:
    """Values of secret-named options (``secret``, ``password``, a ``header.Authorization``
    or a ``headers`` table's ``Authorization``/``X-Api-Key``), whole and word by word
    (``Bearer xyz`` -> ``xyz``; ``whsec_a,whsec_b`` -> each)."""
    found: list[str] = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            found += secrets_in_options(value)
        elif value is not None and is_secret_name(str(key).removeprefix("header.")):
            text = str(value)
            found += [text, *text.replace(",", " ").split()]
    return found
