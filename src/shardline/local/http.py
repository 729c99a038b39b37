"""The local stack's WSGI app: control endpoint, fault injection, Streams API, moto.

Each request goes, in order, to:

1. the control endpoint, when its path starts with ``/_shardline/``;
2. the fault rules (:mod:`shardline.local.faults`), which may throttle it, answer 500,
   drop the connection or fail a conditional write — before or after carrying it out;
3. :class:`~shardline.local.streams_api.StreamsApi` when its ``X-Amz-Target`` starts with
   ``DynamoDBStreams_20120810.``, else moto's DynamoDB.
"""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import orjson

from shardline.aws.protocol import JSON_CONTENT_TYPE, TARGET_PREFIXES
from shardline.local.faults import HTTP_KINDS, STREAMS_OPERATIONS, FaultRule
from shardline.local.graph import GraphError
from shardline.local.streams_api import Caller, StreamsApi

log = logging.getLogger(__name__)

STREAMS_TARGET_PREFIX = TARGET_PREFIXES["dynamodbstreams"] + "."
CONTROL_PREFIX = "/_shardline/"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/")
_STATUS_TEXT = {
    200: "200 OK",
    400: "400 Bad Request",
    404: "404 Not Found",
    500: "500 Internal Server Error",
}

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
ControlHandler = Callable[[str, str, bytes], tuple[int, bytes]]
"""(method, path after the prefix, body) -> (HTTP status, JSON body)."""


class StackApp:
    """The WSGI app of one local stack."""

    def __init__(
        self,
        moto_app: WsgiApp,
        api: StreamsApi,
        default_region: str,
        control: ControlHandler | None = None,
    ) -> None:
        self.moto_app = moto_app
        self.api = api
        self.default_region = default_region
        self.control = control

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request."""
        path = environ.get("PATH_INFO", "")
        if self.control is not None and path.startswith(CONTROL_PREFIX):
            return self._control(environ, path[len(CONTROL_PREFIX) :], start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        operation = target.partition(".")[2]
        rule = self._fault_for(operation, body)
        if rule is None:
            return self._serve(target, operation, body, environ, start_response)
        if rule.applied:
            self._carry_out(target, operation, body, environ)
        return self._fail(rule, operation, environ, start_response)

    # --- normal service --------------------------------------------------------------

    def _serve(
        self,
        target: str,
        operation: str,
        body: bytes,
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        if not target.startswith(STREAMS_TARGET_PREFIX):
            return self.moto_app(environ, start_response)
        status, answer = self._answer(operation, body, self._caller(environ))
        return _respond(start_response, status, answer)

    def _carry_out(self, target: str, operation: str, body: bytes, environ: dict[str, Any]) -> None:
        """Serve the request and throw the answer away (for ``applied`` faults)."""
        result = self._serve(target, operation, body, environ, lambda *args, **kwargs: None)
        for _ in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()

    def _answer(self, operation: str, body: bytes, caller: Caller) -> tuple[int, bytes]:
        try:
            return 200, self.api.handle(operation, body, caller)
        except GraphError as exc:
            return 400, error_body(exc.code, exc.message)
        except Exception as exc:  # never a 500 by accident: the client sees a typed 400
            log.exception("local stack: %s failed", operation)
            return 400, error_body("ValidationException", f"{operation}: {exc!r}")

    def _caller(self, environ: dict[str, Any]) -> Caller:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        access_key, region = match.groups() if match else ("", self.default_region)
        account = environ.get("HTTP_X_MOTO_ACCOUNT_ID") or account_for(access_key)
        return Caller(account_id=account, region=region)

    # --- faults ----------------------------------------------------------------------

    def _fault_for(self, operation: str, body: bytes) -> FaultRule | None:
        if not operation or not self.api.faults.rules():
            return None
        params = _loose_params(body)
        return self.api.faults.pick(
            operation,
            tables_of(params),
            conditional=is_conditional(params),
            kinds=HTTP_KINDS,
        )

    def _fail(
        self,
        rule: FaultRule,
        operation: str,
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        if rule.kind == "drop":
            _drop(environ)
        if rule.kind == "error":
            return _respond(start_response, 500, error_body("InternalServerError", "injected"))
        if rule.kind == "race":
            code, message = "ConditionalCheckFailedException", "The conditional request failed"
        elif operation in STREAMS_OPERATIONS:
            code, message = "LimitExceededException", "Rate exceeded for shard (injected)"
        else:
            code = "ProvisionedThroughputExceededException"
            message = "The level of configured provisioned throughput was exceeded (injected)"
        return _respond(start_response, 400, error_body(code, message))

    # --- control ---------------------------------------------------------------------

    def _control(
        self, environ: dict[str, Any], path: str, start_response: StartResponse
    ) -> Iterable[bytes]:
        assert self.control is not None
        query = environ.get("QUERY_STRING", "")
        full = f"{path}?{query}" if query else path
        status, body = self.control(environ.get("REQUEST_METHOD", "GET"), full, _read_body(environ))
        start_response(
            _STATUS_TEXT.get(status, f"{status} Error"),
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


def _respond(start_response: StartResponse, status: int, body: bytes) -> list[bytes]:
    start_response(
        _STATUS_TEXT[status],
        [
            ("Content-Type", JSON_CONTENT_TYPE),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", uuid.uuid4().hex),
        ],
    )
    return [body]


def _drop(environ: dict[str, Any]) -> NoReturn:
    """Close the client's connection; the server then forgets the request."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionAbortedError("connection dropped by an injected fault")


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _loose_params(body: bytes) -> dict[str, Any]:
    try:
        params = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return {}
    return params if isinstance(params, dict) else {}


def tables_of(params: dict[str, Any]) -> set[str]:
    """The tables a request names (TableName, batch and transaction items, stream ARNs)."""
    tables: set[str] = set()
    if isinstance(params.get("TableName"), str):
        tables.add(params["TableName"])
    if isinstance(params.get("RequestItems"), dict):
        tables.update(params["RequestItems"])
    for item in params.get("TransactItems") or ():
        for action in item.values() if isinstance(item, dict) else ():
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                tables.add(action["TableName"])
    arn = params.get("StreamArn") or params.get("ShardIterator")
    if isinstance(arn, str) and "/stream/" in arn:
        tables.add(arn.split(":table/", 1)[-1].split("/", 1)[0])
    return tables


def is_conditional(params: dict[str, Any]) -> bool:
    """Whether a write carries a condition (a race can only fail those)."""
    if "ConditionExpression" in params or "Expected" in params:
        return True
    items = params.get("TransactItems") or ()
    return any(
        isinstance(action, dict) and "ConditionExpression" in action
        for item in items
        if isinstance(item, dict)
        for action in item.values()
    )


def error_body(code: str, message: str) -> bytes:
    """An AWS JSON 1.0 error body."""
    return orjson.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})


def account_for(access_key: str) -> str:
    """The account moto would use for this access key."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    from moto.iam.models import get_account_id_from

    return str(get_account_id_from(access_key))
