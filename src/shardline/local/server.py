"""The embedded local stack: moto's DynamoDB plus a shard-graph DynamoDB Streams, one port.

Requests whose ``X-Amz-Target`` starts with ``DynamoDBStreams_20120810.`` are answered
by :class:`~shardline.local.patch.StreamsApi`; everything else goes to moto's app.

moto keeps its state in process-wide backends, so every stack in one process shares
tables: run one stack per process, or give each test its own table names.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import uuid
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType
from typing import Any

import orjson

from shardline.local import patch
from shardline.local.graph import GraphError, ShardGraph

log = logging.getLogger(__name__)

STREAMS_TARGET_PREFIX = "DynamoDBStreams_20120810."
_JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class StreamsMiddleware:
    """WSGI app: DynamoDB Streams calls go to ``api``, the rest to moto."""

    def __init__(self, moto_app: WsgiApp, api: patch.StreamsApi, default_region: str) -> None:
        self.moto_app = moto_app
        self.api = api
        self.default_region = default_region

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Route one request by its ``X-Amz-Target`` header."""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(STREAMS_TARGET_PREFIX):
            return self.moto_app(environ, start_response)
        operation = target[len(STREAMS_TARGET_PREFIX) :]
        status, body = self._answer(operation, _read_body(environ), self._caller(environ))
        start_response(
            status,
            [
                ("Content-Type", _JSON_CONTENT_TYPE),
                ("Content-Length", str(len(body))),
                ("x-amzn-RequestId", uuid.uuid4().hex),
            ],
        )
        return [body]

    def _answer(self, operation: str, body: bytes, caller: patch.Caller) -> tuple[str, bytes]:
        try:
            return "200 OK", self.api.handle(operation, body, caller)
        except GraphError as exc:
            return "400 Bad Request", _error_body(exc.code, exc.message)
        except Exception as exc:  # never a 500: the client sees a typed 400
            log.exception("local stack: %s failed", operation)
            return "400 Bad Request", _error_body("ValidationException", f"{operation}: {exc!r}")

    def _caller(self, environ: dict[str, Any]) -> patch.Caller:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        access_key, region = match.groups() if match else ("", self.default_region)
        account = environ.get("HTTP_X_MOTO_ACCOUNT_ID") or _account_for(access_key)
        return patch.Caller(account_id=account, region=region)


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})


def _account_for(access_key: str) -> str:
    """The account moto would use for this access key."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    from moto.iam.models import get_account_id_from

    return str(get_account_id_from(access_key))


class _Ticker:
    """A daemon thread that calls ``action`` every ``interval`` seconds until stopped."""

    def __init__(self, name: str, interval: float, action: Callable[[], None]) -> None:
        self._interval = interval
        self._action = action
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._action()
            except Exception:
                log.exception("local stack: %s failed", self._thread.name)


class LocalStack:
    """moto's DynamoDB and a shard-graph DynamoDB Streams, served on one local port.

    ``rollover_every`` closes every open shard (one child each) and ``split_every``
    splits the oldest open shard (two children) of every stream, periodically.
    ``children_first`` lists shards newest first in DescribeStream;
    ``eager_shard_end`` drops ``NextShardIterator`` already on the page that returns
    a closed shard's last records (otherwise on the next, empty page);
    ``iterator_ttl`` (seconds) makes older iterators fail with ExpiredIteratorException.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        rollover_every: float | None = None,
        split_every: float | None = None,
        max_page_bytes: int = 1_048_576,
        *,
        children_first: bool = False,
        eager_shard_end: bool = True,
        iterator_ttl: float | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.api = patch.StreamsApi(
            max_page_bytes=max_page_bytes,
            children_first=children_first,
            eager_shard_end=eager_shard_end,
            iterator_ttl=iterator_ttl,
        )
        self._intervals = {"rollover": rollover_every, "split": split_every}
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._tickers: list[_Ticker] = []

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> LocalStack:
        """Patch moto, bind the port, serve in a daemon thread, start the timers."""
        if self._server is not None:
            return self
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        patch.install()
        moto_app = DomainDispatcherApplication(create_backend_app)
        app = StreamsMiddleware(moto_app, self.api, self.region)
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=_quiet_handler()
        )
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="shardline-local", daemon=True
        )
        self._thread.start()
        self._start_tickers()
        return self

    def stop(self) -> None:
        """Stop the timers and the server (moto's tables stay in this process)."""
        for ticker in self._tickers:
            ticker.stop()
        self._tickers = []
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        """``http://<host>:<port>`` for boto3's ``endpoint_url`` (DynamoDB and Streams)."""
        return f"http://{self.host}:{self.port}"

    @property
    def children_first(self) -> bool:
        """Whether DescribeStream lists the newest shards first."""
        return self.api.children_first

    @children_first.setter
    def children_first(self, value: bool) -> None:
        self.api.children_first = value

    # --- shard graph controls -----------------------------------------------------

    def rollover(self, table_name: str) -> list[str]:
        """Close every open shard of the table's stream; return the new child ids."""
        return self.graph(table_name).rollover()

    def split(self, table_name: str, shard_id: str | None = None) -> list[str]:
        """Split one open shard (default: the oldest) into two; return the child ids."""
        return self.graph(table_name).split(shard_id)

    def shards(self, table_name: str) -> list[dict[str, Any]]:
        """Every shard of the table's stream, wire-shaped, parents before children."""
        return self.graph(table_name).shards()

    def graph(self, table_name: str) -> ShardGraph:
        """The shard graph of the table's stream (raises LookupError if it has none)."""
        table = patch.find_table(_account_for(""), self.region, table_name)
        stream = patch.stream_of(table)
        if stream is None:
            raise LookupError(f"table {table_name} has no stream")
        return stream.graph

    def _graphs(self) -> list[ShardGraph]:
        streams = (patch.stream_of(t) for t in patch.tables_in(_account_for(""), self.region))
        return [stream.graph for stream in streams if stream is not None and stream.enabled]

    def _rollover_all(self) -> None:
        for graph in self._graphs():
            graph.rollover()

    def _split_all(self) -> None:
        for graph in self._graphs():
            graph.split()

    def _start_tickers(self) -> None:
        actions = {"rollover": self._rollover_all, "split": self._split_all}
        for name, interval in self._intervals.items():
            if interval is not None:
                ticker = _Ticker(f"shardline-local-{name}", interval, actions[name])
                ticker.start()
                self._tickers.append(ticker)


def _quiet_handler() -> type:
    """moto's request handler, without a log line per request."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    return QuietHandler


def serve(
    host: str,
    port: int,
    *,
    rollover_every: float | None,
    split_every: float | None,
    region: str,
) -> None:
    """Run a local stack until SIGINT or SIGTERM; print one line with its endpoint."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = LocalStack(
        host=host, port=port, region=region, rollover_every=rollover_every, split_every=split_every
    )
    try:
        stack.start()
        print(f"shardline local stack: {stack.endpoint_url} (region {region})", flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
