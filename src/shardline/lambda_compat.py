"""Run AWS Lambda handlers unchanged: Lambda's DynamoDB Streams event and context.

:func:`lambda_event` builds exactly what Lambda's event source mapping passes to a
function for DynamoDB Streams::

    {"Records": [{"eventID", "eventName", "eventVersion", "eventSource", "awsRegion",
                  "eventSourceARN", "dynamodb": {"ApproximateCreationDateTime" (seconds),
                  "Keys", "NewImage", "OldImage", "SequenceNumber", "SizeBytes",
                  "StreamViewType"}, "userIdentity" (TTL deletions only)}]}

plus, with tumbling windows, ``window``, ``state``, ``shardId``, ``eventSourceARN``,
``isFinalInvokeForWindow`` and ``isWindowTerminatedEarly``. :class:`LambdaContext`
carries the attributes and methods of Lambda's Python context object.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shardline.records import StreamRecord

__all__ = [
    "ClientContext",
    "CognitoIdentity",
    "LambdaContext",
    "lambda_event",
    "lambda_record",
    "region_of_arn",
]

_DYNAMODB_FIELDS = (
    "ApproximateCreationDateTime",
    "Keys",
    "NewImage",
    "OldImage",
    "SequenceNumber",
    "SizeBytes",
    "StreamViewType",
)


def region_of_arn(arn: str) -> str:
    """The region part of an ARN (``arn:aws:dynamodb:REGION:...``), or ``""``."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def lambda_record(raw: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """One record as Lambda delivers it: the wire record plus ``eventSourceARN``.

    Keys are in Lambda's order. ``ApproximateCreationDateTime`` stays in seconds (a
    number, as Lambda sends it); ``userIdentity`` appears only when the stream has it.
    """
    ddb = raw.get("dynamodb") or {}
    record: dict[str, Any] = {
        "eventID": raw.get("eventID"),
        "eventName": raw.get("eventName"),
        "eventVersion": raw.get("eventVersion", "1.1"),
        "eventSource": raw.get("eventSource", "aws:dynamodb"),
        "awsRegion": raw.get("awsRegion") or region_of_arn(stream_arn),
        "dynamodb": {name: ddb[name] for name in _DYNAMODB_FIELDS if name in ddb},
        "eventSourceARN": stream_arn,
    }
    if raw.get("userIdentity") is not None:
        record["userIdentity"] = lambda_user_identity(raw["userIdentity"])
    return record


def lambda_user_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """GetRecords sends ``{"PrincipalId", "Type"}``; Lambda events carry
    ``{"type", "principalId"}`` (as in Lambda's TTL-delete examples)."""
    renamed = {"Type": "type", "PrincipalId": "principalId"}
    return {renamed.get(name, name): value for name, value in identity.items()}


def lambda_event(
    records: Iterable[StreamRecord],
    stream_arn: str,
    *,
    window: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event Lambda passes for a DynamoDB Streams batch.

    ``window`` (tumbling windows only) holds ``start``, ``end`` (ISO-8601), ``state``,
    ``shardId``, ``isFinalInvokeForWindow`` and ``isWindowTerminatedEarly``; they are
    added at the top level as Lambda does, with ``eventSourceARN``.
    """
    event: dict[str, Any] = {"Records": [lambda_record(r.raw, stream_arn) for r in records]}
    if window is not None:
        event["window"] = {"start": window["start"], "end": window["end"]}
        event["state"] = dict(window["state"])
        event["shardId"] = window["shardId"]
        event["eventSourceARN"] = stream_arn
        event["isFinalInvokeForWindow"] = bool(window["isFinalInvokeForWindow"])
        event["isWindowTerminatedEarly"] = bool(window["isWindowTerminatedEarly"])
    return event


@dataclass
class CognitoIdentity:
    """``context.identity`` (empty for stream invocations)."""

    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


@dataclass
class ClientContext:
    """``context.client_context`` (``None`` for stream invocations; here for completeness)."""

    client: Any = None
    custom: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)


class LambdaContext:
    """Lambda's Python context object.

    Attributes: ``function_name``, ``function_version``, ``invoked_function_arn``,
    ``memory_limit_in_mb``, ``aws_request_id`` (fresh per invocation), ``log_group_name``,
    ``log_stream_name``, ``identity``, ``client_context``, ``tenant_id``. Method:
    ``get_remaining_time_in_millis()``, counting down from ``timeout`` seconds (there is
    no hard limit here: the handler is never killed; a timeout is advisory).
    """

    def __init__(
        self,
        function_name: str,
        *,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        timeout: float = 900.0,
        memory_limit_in_mb: int = 128,
        function_version: str = "$LATEST",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"shardline/{function_version}/{uuid.uuid4().hex}"
        self.identity = CognitoIdentity()
        self.client_context: ClientContext | None = None
        self.tenant_id: str | None = None
        self._clock = clock
        self._deadline = clock() + timeout

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left of this invocation's timeout (never below 0)."""
        return max(0, int((self._deadline - self._clock()) * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext({self.function_name!r}, request {self.aws_request_id})"
