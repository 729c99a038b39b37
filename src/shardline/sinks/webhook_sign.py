"""Standard Webhooks signatures (https://www.standardwebhooks.com), pure.

A request carries ``webhook-id`` (the event id: the same on every retry, so a receiver
can drop duplicates), ``webhook-timestamp`` (Unix seconds when this attempt was sent) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` for each
secret, separated by spaces, so a receiver that knows any one of them verifies (key
rotation). A secret is ``whsec_`` followed by the base64 of its key bytes; several are
separated by commas.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["SECRET_PREFIX", "parse_secrets", "sign", "signature_header"]

SECRET_PREFIX = "whsec_"


def parse_secrets(text: str) -> tuple[bytes, ...]:
    """The key bytes of ``whsec_...`` secrets separated by commas.

    Raises :class:`ValueError` saying which secret (by position, never its value) is
    malformed.
    """
    secrets = [part.strip() for part in text.split(",") if part.strip()]
    if not secrets:
        raise ValueError("the webhook secret is empty (expected whsec_<base64>)")
    keys = []
    for position, secret in enumerate(secrets, 1):
        where = f"secret {position} of {len(secrets)}" if len(secrets) > 1 else "the secret"
        if not secret.startswith(SECRET_PREFIX):
            raise ValueError(f"{where} does not start with {SECRET_PREFIX} (whsec_<base64>)")
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where} is not whsec_ followed by base64") from None
        if len(key) < 16:
            raise ValueError(f"{where} is shorter than 16 bytes (24 to 64 are usual)")
        keys.append(key)
    return tuple(keys)


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 signature>`` of one request with one key."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,...`` per key, separated by spaces."""
    return " ".join(sign(key, message_id, timestamp, body) for key in keys)
