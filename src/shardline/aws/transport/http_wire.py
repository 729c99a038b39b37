"""Pure parts of :mod:`.http`: endpoint URLs, response heads, body framing, content codings.

No I/O here: each function takes bytes or text and returns what the connection needs, or
raises :class:`HttpProtocolError` (or ``ValueError`` for a URL) with a message that names
the peer.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "HttpBodyTooLargeError",
    "HttpConnectError",
    "HttpContentEncodingError",
    "HttpError",
    "HttpProtocolError",
    "HttpProxyRefusedError",
    "HttpTimeoutError",
    "decode_content",
    "describe",
    "encode_request",
    "framing",
    "parse_head",
    "parse_url",
]

IDLE, HEAD, LENGTH, CHUNKED, UNTIL_CLOSE = range(5)  # what a connection is reading
Framing = tuple[int, int, bool]  # parser state for the body, Content-Length, keep-alive

_RESERVED_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding"})
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DEFAULT_PORTS: Final[Mapping[str, int]] = {"http": 80, "https": 443}
_DIGITS: Final = re.compile(r"[0-9]{1,18}")
_STATUS_LINE: Final = re.compile(r"HTTP/1\.([01]) ([0-9]{3})(?: |$)")
_UNSAFE_URL: Final = re.compile(r"[^\x21-\x7e]")
_ZLIB_WINDOWS: Final[Mapping[str, int]] = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}


class HttpError(Exception):
    """Base of the client's errors; the message names what happened and the host:port."""


class HttpConnectError(HttpError):
    """DNS, TCP connect or TLS handshake failure, or ``connect_timeout`` passed."""


class HttpProxyRefusedError(HttpConnectError):
    """The proxy answered, but refused the request (e.g. 407 credentials, 403 policy)."""


class HttpTimeoutError(HttpError):
    """No complete response within the request's time limit."""


class HttpProtocolError(HttpError):
    """A malformed or truncated response, or the connection closed or reset mid-response."""


class HttpBodyTooLargeError(HttpProtocolError):
    """The response body (sent or decoded) is larger than the pool's ``max_body``."""


class HttpContentEncodingError(HttpProtocolError):
    """The body has a ``Content-Encoding`` other than gzip, deflate or identity."""


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, or just its type when the message is empty."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def encode_request(
    prefix: str, body: bytes, headers: Mapping[str, str], checked: set[str]
) -> bytes:
    """``prefix`` (request line, Host, ``Content-Length: ``), the length, ``headers`` and
    ``body`` as bytes. Header names are validated once each (remembered in ``checked``);
    raises ``ValueError`` for a header that cannot be sent."""
    parts = [prefix, str(len(body)), "\r\n"]
    for name, value in headers.items():
        if name not in checked:
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"HTTP header {name!r} is set by HttpPool; do not pass it")
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"invalid HTTP header name {name!r}")
            checked.add(name)
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"HTTP header {name!r} has a line break or NUL in its value")
        parts += (name, ": ", value, "\r\n")
    parts.append("\r\n")
    try:
        head = "".join(parts).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"HTTP headers must be latin-1 text: {exc}") from exc
    return head + body


def parse_head(block: bytes, label: str) -> tuple[int, bool, dict[str, str]]:
    """Status code, whether HTTP/1.1, and headers from a response head (without CRLFCRLF)."""
    lines = block.decode("latin-1").split("\r\n")
    status_line = _STATUS_LINE.match(lines[0])
    if status_line is None:
        raise HttpProtocolError(f"malformed status line from {label}: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name[0] in " \t" or name[-1] in " \t":
            raise HttpProtocolError(f"malformed header line from {label}: {line[:80]!r}")
        name = name.lower()
        value = value.strip(" \t")
        previous = headers.get(name)
        headers[name] = value if previous is None else f"{previous}, {value}"
    return int(status_line[2]), status_line[1] == "1", headers


def framing(status: int, http11: bool, headers: dict[str, str], label: str) -> Framing:
    """How the body is delimited (state, length) and whether the connection stays open."""
    connection = headers.get("connection")
    tokens = {t.strip() for t in connection.lower().split(",")} if connection else set()
    keep_alive = "close" not in tokens if http11 else "keep-alive" in tokens
    if status in (204, 304):
        return IDLE, 0, keep_alive
    coding = headers.get("transfer-encoding")
    if coding is not None:
        chunked = coding.rpartition(",")[2].strip().lower() == "chunked"
        keep_alive = keep_alive and chunked and "content-length" not in headers
        return (CHUNKED if chunked else UNTIL_CLOSE), 0, keep_alive
    length = headers.get("content-length")
    if length is None:
        return UNTIL_CLOSE, 0, False
    values = {v.strip() for v in length.split(",")}  # "5, 5" from repeated headers
    if len(values) != 1 or not _DIGITS.fullmatch(value := values.pop()):
        raise HttpProtocolError(f"bad Content-Length from {label}: {length!r}")
    return LENGTH, int(value), keep_alive


def decode_content(encoding: str | None, body: bytes, limit: int, label: str) -> bytes:
    """``body`` decoded from its ``Content-Encoding`` (gzip, x-gzip, deflate, identity).

    shardline asks for ``identity``; a middlebox may compress anyway. Other codings, a
    body that does not decode, or one that decodes to more than ``limit`` bytes raise
    :class:`HttpProtocolError` (:class:`HttpBodyTooLargeError`) saying so.
    """
    if encoding is None:
        return body
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    for coding in reversed(codings):  # the last coding applied is undone first
        if coding == "identity":
            continue
        wbits = _ZLIB_WINDOWS.get(coding)
        if wbits is None:
            raise HttpContentEncodingError(
                f"answer from {label} is {coding!r}-encoded; shardline asks for identity and"
                " decodes only gzip and deflate (a proxy or middlebox changed it?)"
            )
        body = _inflate(body, wbits, coding, limit, label)
    return body


def _inflate(body: bytes, wbits: int, coding: str, limit: int, label: str) -> bytes:
    try:
        inflater = zlib.decompressobj(wbits)
        data = inflater.decompress(body, limit + 1)
        if len(data) > limit:
            raise HttpBodyTooLargeError(
                f"{coding} answer from {label} decodes to more than {limit} bytes"
            )
        data += inflater.flush()
        if not inflater.eof or inflater.unused_data:
            raise zlib.error("truncated or trailing data")
    except zlib.error as exc:
        if coding == "deflate" and wbits > 0:  # some servers send raw deflate
            return _inflate(body, -zlib.MAX_WBITS, "deflate (raw)", limit, label)
        raise HttpProtocolError(f"{coding} answer from {label} does not decode: {exc}") from exc
    return data


def parse_url(url: str) -> tuple[str, str, int, str, str]:
    """Scheme, host, port, request target and ``Host`` header of an endpoint URL. The
    ``Host`` value is what botocore's SigV4 signs (``botocore.auth._host_from_url``): the
    lower-cased host, IPv6 in brackets, with the port only if it is not the default."""
    if _UNSAFE_URL.search(url):
        raise ValueError(f"URL {url!r} has whitespace, control or non-ASCII characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"URL {url!r}: the scheme must be http or https")
    host = parts.hostname
    if not host:
        raise ValueError(f"URL {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the endpoint URL are not supported")
    try:
        explicit_port = parts.port
        if explicit_port == 0:
            raise ValueError("port 0")
    except ValueError as exc:
        raise ValueError(f"URL {url!r} has an invalid port: {exc}") from exc
    default = _DEFAULT_PORTS[scheme]
    port = explicit_port or default  # port 0 was rejected above
    host_header = f"[{host}]" if ":" in host else host
    if port != default:
        host_header = f"{host_header}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, target, host_header
