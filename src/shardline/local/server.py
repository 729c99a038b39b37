"""The embedded local stack: moto's DynamoDB plus a shard-graph DynamoDB Streams, one port.

Requests whose ``X-Amz-Target`` starts with ``DynamoDBStreams_20120810.`` are answered
by :class:`~shardline.local.streams_api.StreamsApi`; everything else goes to moto's app. The
control channel (:mod:`shardline.local.control`) and fault injection
(:mod:`shardline.local.faults`) sit in front of both (:mod:`shardline.local.http`).

moto keeps its state in process-wide backends, so every stack in one process shares
tables: run one stack per process, or give each test its own table names.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from types import FrameType, TracebackType
from typing import Any

from shardline.extras import require
from shardline.local import patch
from shardline.local.control import SETTINGS, ControlApi
from shardline.local.faults import FaultRule, Faults
from shardline.local.graph import ShardGraph
from shardline.local.http import StackApp, account_for
from shardline.local.settings import LOCAL, LocalStackSettings
from shardline.local.streams_api import StreamsApi
from shardline.local.tables import find_table, tables_in

log = logging.getLogger(__name__)

_account_for = account_for
_TTL_TYPES = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


class _Ticker:
    """A daemon thread that calls ``action`` every ``interval()`` seconds until stopped."""

    def __init__(
        self, name: str, interval: Callable[[], float], action: Callable[[], None]
    ) -> None:
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
        while not self._stopped.wait(self._interval()):
            try:
                self._action()
            except Exception:
                log.exception("local stack: %s failed", self._thread.name)


class LocalStack:
    """moto's DynamoDB and a shard-graph DynamoDB Streams, served on one local port.

    Shard changes: ``rollover_every`` closes every open shard (one child each) and
    ``split_every`` splits the oldest open shard (two children) of every stream,
    periodically; ``reshard_every`` rolls over or splits one random open shard at
    random moments (on average every that many seconds; splits only while a stream has
    fewer than ``max_open_shards`` open shards); ``parent_open_for`` keeps a parent
    open (taking writes) for that many seconds after its children appear.

    Reads: ``children_first`` lists shards newest first in DescribeStream;
    ``describe_page_size`` caps its pages; ``eager_shard_end`` drops
    ``NextShardIterator`` already on the page that returns a closed shard's last
    records (otherwise on the next, empty page); ``iterator_ttl`` (seconds) makes older
    iterators fail with ExpiredIteratorException; ``retention`` (seconds) trims older
    records (TrimmedDataAccessException) and removes closed shards older than it.

    Faults: ``faults`` are the initial :class:`~shardline.local.faults.FaultRule` s (or
    ``KIND:key=value`` specs); :attr:`faults` changes them while the stack runs.
    ``seed`` makes fault draws and random shard changes repeatable.
    """

    def __init__(
        self,
        host: str = LOCAL.host,
        port: int = 0,
        region: str = LOCAL.region,
        rollover_every: float | None = None,
        split_every: float | None = None,
        max_page_bytes: int = 1_048_576,
        *,
        children_first: bool = False,
        eager_shard_end: bool = True,
        iterator_ttl: float | None = None,
        retention: float | None = None,
        describe_page_size: int = 100,
        reshard_every: float | None = None,
        max_open_shards: int = 8,
        parent_open_for: float | None = None,
        faults: Iterable[FaultRule | str] = (),
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.region = region
        self._rng = random.Random(seed)
        self.api = StreamsApi(
            max_page_bytes=max_page_bytes,
            children_first=children_first,
            eager_shard_end=eager_shard_end,
            iterator_ttl=iterator_ttl,
            retention=retention,
            describe_page_size=describe_page_size,
            faults=Faults(random.Random(self._rng.random())),
        )
        for rule in faults:
            self.api.faults.add(rule)
        self.parent_open_for = parent_open_for
        self.max_open_shards = max_open_shards
        self._intervals = {
            "rollover": rollover_every,
            "split": split_every,
            "reshard": reshard_every,
        }
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._tickers: list[_Ticker] = []
        self._timers: list[threading.Timer] = []

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> LocalStack:
        """Patch moto, bind the port, serve in a daemon thread, start the timers.

        Raises :class:`~shardline.extras.MissingExtraError` (one line naming
        ``pip install 'shardline[local]'``) when moto's server is not installed."""
        if self._server is not None:
            return self
        require("moto.moto_server.werkzeug_app", "local", feature="the local stack")
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        patch.install()
        moto_app = DomainDispatcherApplication(create_backend_app)
        app = StackApp(moto_app, self.api, self.region, ControlApi(self))
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
        for timer in self._timers:
            timer.cancel()
        self._timers = []
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
        return self.client_settings.endpoint_url

    @property
    def client_settings(self) -> LocalStackSettings:
        """:data:`~shardline.local.settings.LOCAL` with this stack's host, port and region
        (the port chosen is known after :meth:`start`)."""
        return replace(LOCAL, host=self.host, port=self.port, region=self.region)

    @property
    def faults(self) -> Faults:
        """The fault rules; add and remove them while the stack runs."""
        return self.api.faults

    @property
    def children_first(self) -> bool:
        """Whether DescribeStream lists the newest shards first."""
        return self.api.children_first

    @children_first.setter
    def children_first(self, value: bool) -> None:
        self.api.children_first = value

    def settings(self) -> dict[str, Any]:
        """The settings that :meth:`configure` may change."""
        return {
            name: getattr(self if name == "parent_open_for" else self.api, name)
            for name in SETTINGS
        }

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change settings while the stack runs (names as in :meth:`settings`)."""
        unknown = set(changes) - set(SETTINGS)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            setattr(self if name == "parent_open_for" else self.api, name, value)
        return self.settings()

    # --- shard graph controls -----------------------------------------------------

    def rollover(
        self,
        table_name: str,
        shard_id: str | None = None,
        *,
        parent_open_for: float | None = None,
    ) -> list[str]:
        """Close every open shard (or only ``shard_id``) of the table's stream, one child
        each; return the new child ids. With ``parent_open_for`` the parents stay open
        for that many seconds while their children are already listed."""
        graph = self.graph(table_name)
        children = graph.rollover(shard_id, parent_open=parent_open_for is not None)
        self._close_later(graph, parent_open_for)
        return children

    def split(
        self,
        table_name: str,
        shard_id: str | None = None,
        *,
        parent_open_for: float | None = None,
    ) -> list[str]:
        """Split one open shard (default: the oldest) into two; return the child ids."""
        graph = self.graph(table_name)
        children = graph.split(shard_id, parent_open=parent_open_for is not None)
        self._close_later(graph, parent_open_for)
        return children

    def shards(self, table_name: str) -> list[dict[str, Any]]:
        """Every shard of the table's stream, wire-shaped, parents before children."""
        return self.graph(table_name).shards()

    def graph(self, table_name: str) -> ShardGraph:
        """The shard graph of the table's stream (raises LookupError if it has none)."""
        table = find_table(_account_for(""), self.region, table_name)
        stream = patch.stream_of(table)
        if stream is None:
            raise LookupError(f"table {table_name} has no stream")
        return stream.graph

    # --- streams and items --------------------------------------------------------

    def stream_arn(self, table_name: str) -> str:
        """The table's latest stream ARN."""
        table = find_table(_account_for(""), self.region, table_name)
        if not table.latest_stream_label:
            raise LookupError(f"table {table_name} has no stream")
        return f"{table.table_arn}/stream/{table.latest_stream_label}"

    def disable_stream(self, table_name: str) -> None:
        """Disable the table's stream: its open shards close, later writes make no records."""
        table = find_table(_account_for(""), self.region, table_name)
        self._backend().update_table_streams(table, {"StreamEnabled": False})

    def enable_stream(self, table_name: str, view_type: str | None = None) -> str:
        """Enable the table's stream again and return the NEW stream ARN.

        The old stream stays readable (DISABLED, every shard closed), as on AWS.
        """
        table = find_table(_account_for(""), self.region, table_name)
        old = patch.stream_of(table)
        view = view_type or (old.view_type if old is not None else "NEW_AND_OLD_IMAGES")
        spec = {"StreamEnabled": True, "StreamViewType": view}
        self._backend().update_table_streams(table, spec)
        return self.stream_arn(table_name)

    def expire(self, table_name: str, key: Mapping[str, Any]) -> bool:
        """Delete an item as DynamoDB's TTL does; False when there was no such item.

        The stream gets a REMOVE record with ``userIdentity``
        ``{"type": "Service", "principalId": "dynamodb.amazonaws.com"}``. ``key`` is
        DynamoDB JSON (``{"pk": {"S": "a"}}``) or plain Python (``{"pk": "a"}``).
        """
        return patch.ttl_delete(_account_for(""), self.region, table_name, wire_key(key))

    def _backend(self) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[_account_for("")][self.region]

    # --- timers -------------------------------------------------------------------

    def _close_later(self, graph: ShardGraph, delay: float | None) -> None:
        if delay is None:
            return
        timer = threading.Timer(delay, graph.close_pending)
        timer.daemon = True
        timer.start()
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]

    def _graphs(self) -> list[ShardGraph]:
        streams = (patch.stream_of(t) for t in tables_in(_account_for(""), self.region))
        return [stream.graph for stream in streams if stream is not None and stream.enabled]

    def _rollover_all(self) -> None:
        for graph in self._graphs():
            graph.rollover()

    def _split_all(self) -> None:
        for graph in self._graphs():
            graph.split()

    def _reshard_all(self) -> None:
        """Roll over or split one random open shard of every stream."""
        for graph in self._graphs():
            open_ids = graph.open_shard_ids()
            if not open_ids:
                continue
            shard_id = self._rng.choice(open_ids)
            keep_open = self.parent_open_for is not None
            if len(open_ids) < self.max_open_shards and self._rng.random() < 0.5:
                graph.split(shard_id, parent_open=keep_open)
            else:
                graph.rollover(shard_id, parent_open=keep_open)
            self._close_later(graph, self.parent_open_for)

    def _start_tickers(self) -> None:
        actions = {
            "rollover": self._rollover_all,
            "split": self._split_all,
            "reshard": self._reshard_all,
        }
        for name, interval in self._intervals.items():
            if interval is not None:
                ticker = _Ticker(
                    f"shardline-local-{name}", self._period(name, interval), actions[name]
                )
                ticker.start()
                self._tickers.append(ticker)

    def _period(self, name: str, interval: float) -> Callable[[], float]:
        if name != "reshard":
            return lambda: interval
        return lambda: self._rng.uniform(0.25, 1.75) * interval


def wire_key(key: Mapping[str, Any]) -> dict[str, Any]:
    """A key as DynamoDB JSON; plain Python values are serialized with boto3's rules."""
    if all(_is_wire_value(value) for value in key.values()):
        return dict(key)
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {name: serializer.serialize(value) for name, value in key.items()}


def _is_wire_value(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _TTL_TYPES


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
    **options: Any,
) -> None:
    """Run a local stack until SIGINT or SIGTERM; print one line with its endpoint.

    ``options`` are :class:`LocalStack`'s keyword arguments (faults, retention, ...).
    """
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = LocalStack(
        host=host,
        port=port,
        region=region,
        rollover_every=rollover_every,
        split_every=split_every,
        **options,
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
