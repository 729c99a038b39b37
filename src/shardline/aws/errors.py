"""AWS error codes onto :mod:`shardline.errors`: :func:`error_from_response`, the only place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from shardline.aws.parsing import loads_object
from shardline.errors import (
    AccessDeniedError,
    AwsError,
    ConditionalCheckFailedError,
    CredentialsError,
    ExpiredIteratorError,
    ResourceInUseError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ThrottledError,
    TrimmedDataAccessError,
    ValidationError,
)

__all__ = ["MAPPED_ERROR_CODES", "error_from_response"]

_THROTTLING_CODES: Final = frozenset(
    {
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
    }
)
_UNAVAILABLE_CODES: Final = frozenset(
    {"InternalServerError", "InternalFailure", "ServiceUnavailable"}
)
_CREDENTIAL_CODES: Final = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "MissingAuthenticationTokenException",
        "IncompleteSignatureException",
    }
)
_ERROR_CLASSES: Final[Mapping[str, type[AwsError]]] = {
    "ResourceNotFoundException": ResourceNotFoundError,
    "ResourceInUseException": ResourceInUseError,
    "ValidationException": ValidationError,
    "SerializationException": ValidationError,
    "ExpiredIteratorException": ExpiredIteratorError,
    "TrimmedDataAccessException": TrimmedDataAccessError,
    "ConditionalCheckFailedException": ConditionalCheckFailedError,
    "AccessDeniedException": AccessDeniedError,
    **dict.fromkeys(_THROTTLING_CODES, ThrottledError),
    **dict.fromkeys(_UNAVAILABLE_CODES, ServiceUnavailableError),
}
MAPPED_ERROR_CODES: Final = frozenset(_ERROR_CLASSES) | _CREDENTIAL_CODES
"""Every AWS error code :func:`error_from_response` maps to a specific class."""


def error_from_response(status: int, body: bytes, operation: str) -> AwsError | CredentialsError:
    """Map one AWS JSON error response onto the :mod:`shardline.errors` tree.

    This is the only place AWS error codes become shardline exceptions. Any 5xx is a
    :class:`ServiceUnavailableError` and HTTP 429 a :class:`ThrottledError`, whatever the
    code; a rejected signature or token is a :class:`CredentialsError`; an unknown code
    is a plain :class:`AwsError`.
    """
    code, message = _parse_error_body(status, body)
    if status >= 500:
        return ServiceUnavailableError(code, message, status=status, operation=operation)
    if status == 429:
        return ThrottledError(code, message, status=status, operation=operation)
    if code in _CREDENTIAL_CODES:
        return CredentialsError(
            f"{operation}: {code}: {message} (the service rejected the AWS credentials;"
            " check AWS_PROFILE, AWS_ACCESS_KEY_ID or the role, and the system clock)"
        )
    error_class = _ERROR_CLASSES.get(code, AwsError)
    return error_class(code, message, status=status, operation=operation)


def _parse_error_body(status: int, body: bytes) -> tuple[str, str]:
    """Read ``__type`` and ``message``/``Message`` from an error body; tolerate non-JSON."""
    try:
        data = loads_object(body)
    except ValueError:
        data = {}
    raw_type = data.get("__type")
    code = raw_type.rpartition("#")[2] if isinstance(raw_type, str) and raw_type else ""
    message = data.get("message", data.get("Message"))
    if not isinstance(message, str):
        message = body[:200].decode("utf-8", "replace").strip() if not data else ""
    return code or f"HTTP{status}", message or "(no message)"
