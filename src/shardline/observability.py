"""Metrics and health over HTTP, and JSON log lines.

:class:`ObservabilityServer` serves, with aiohttp on ``127.0.0.1`` by default:

* ``GET /metrics``: Prometheus text exposition of a :class:`~shardline.metrics.Metrics`
  registry (``prometheus_client.generate_latest``);
* ``GET /health``: the worker's :class:`HealthSource` answer as JSON; ``200`` when the
  worker is ready and healthy, ``503`` otherwise (ready: leases are held, or none are
  available to take; healthy: the worker can renew its leases);
* ``GET /health/live`` (liveness): ``200`` whenever the process and its event loop answer
  (the server runs on the worker's loop, so a loop that is blocked or gone answers nothing
  and the probe times out). A worker that cannot reach DynamoDB is not restarted for it:
  a restart would not help, and the leases move to healthy workers anyway;
* ``GET /health/ready`` (readiness): what ``/health`` answers, ``200`` when ready and
  healthy, ``503`` otherwise.

While serving, the registry also carries ``shardline_ready`` and ``shardline_healthy``
(1 or 0, the worker's answer at scrape time): a worker that holds no lease and is not
ready is one that sees unowned leases it has not taken (or one still starting).

:class:`JsonFormatter` writes one JSON object per log line (``--log-format json``),
:class:`TextFormatter` one line of text. Both mask secrets (:data:`shardline.redact.SECRETS`
and :func:`~shardline.redact.redact_text`'s patterns) in the message, the extras and the
traceback; ``/metrics`` and ``/health`` answers are masked the same way.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shardline.metrics import Metrics
from shardline.redact import SECRETS, KnownSecrets

__all__ = [
    "HealthSource",
    "JsonFormatter",
    "ObservabilityServer",
    "TextFormatter",
    "setup_logging",
]


class HealthSource(Protocol):
    """What the health endpoint asks (the :class:`~shardline.worker.Worker`)."""

    def health(self) -> dict[str, Any]:
        """``{"ready": bool, "healthy": bool, "leases": int, "detail": str}``."""
        ...


_UNKNOWN = {"ready": False, "healthy": True, "leases": 0, "detail": "worker not started"}


class ObservabilityServer:
    """``/metrics`` and ``/health`` for one worker; start it, then stop it."""

    def __init__(
        self,
        metrics: Metrics,
        health: HealthSource | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.metrics = metrics
        self.health_source = health
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._collector: _HealthCollector | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` once started (the real port when 0 was asked)."""
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        """The aiohttp application (for embedding in another server)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_get("/health/live", self._live)
        app.router.add_get("/health/ready", self._ready)
        return app

    async def start(self) -> ObservabilityServer:
        """Bind and serve on the running event loop."""
        if self._collector is None:
            self._collector = _HealthCollector(self)
            self.metrics.registry.register(self._collector)
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses  # the bound (host, port, ...) of each socket
        if addresses:
            self.port = int(addresses[0][1])
        logging.getLogger("shardline").info(
            "metrics and health on %s (/metrics, /health)", self.url
        )
        return self

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._collector is not None:
            self.metrics.registry.unregister(self._collector)
            self._collector = None

    async def __aenter__(self) -> ObservabilityServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def current_health(self) -> dict[str, Any]:
        """The worker's answer (secrets masked), or "not started" before there is a worker."""
        if self.health_source is None:
            return dict(_UNKNOWN)
        try:
            health = dict(self.health_source.health())
        except Exception as exc:
            health = {"ready": False, "healthy": False, "leases": 0, "detail": repr(exc)}
        masked: dict[str, Any] = SECRETS.redact_value(health)
        return masked

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        health = self.current_health()
        return web.json_response(health, status=200 if _ready_and_healthy(health) else 503)

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def _ready(self, request: web.Request) -> web.Response:
        return await self._health(request)


def _ready_and_healthy(health: dict[str, Any]) -> bool:
    return bool(health.get("ready")) and bool(health.get("healthy"))


class _HealthCollector(Collector):
    """``shardline_ready`` and ``shardline_healthy`` from the worker's answer at scrape time."""

    def __init__(self, server: ObservabilityServer) -> None:
        self._server = server

    def collect(self) -> Any:
        health = self._server.current_health()
        yield GaugeMetricFamily(
            "shardline_ready",
            "1 when the worker holds leases or none are available to take (readiness)",
            value=1.0 if health.get("ready") else 0.0,
        )
        yield GaugeMetricFamily(
            "shardline_healthy",
            "1 while the worker renews its leases and scans the lease table",
            value=1.0 if health.get("healthy") else 0.0,
        )

    def describe(self) -> Any:
        return []


_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}  # fmt: skip


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message`` (and the traceback), secrets masked."""

    def __init__(self, secrets: KnownSecrets = SECRETS) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return self.secrets.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, extras.

    ``extra={...}`` fields of a log call are added as keys; an exception adds
    ``exc_type`` and ``exc_info`` (the formatted traceback). Secrets are masked in every
    string (an extra that is not plain JSON data is written, masked, as its ``str``).
    """

    def __init__(self, secrets: KnownSecrets = SECRETS) -> None:
        super().__init__()
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc_info"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(self.secrets.redact_value(entry))


def setup_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Configure the root logger for ``--log-level`` and ``--log-format text|json``.

    Replaces the root logger's handlers with one on stderr whose formatter masks secrets.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("botocore").setLevel(logging.WARNING)
