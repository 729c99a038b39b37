"""A real webhook receiver for the tests: aiohttp, signatures verified by ``standardwebhooks``.

Faults are injected per request: a queue of faults for a ``webhook-id`` (popped one per
attempt), or for every request while ``fail_all`` is set. A fault is ``"500"``/``"400"``
(any status), ``"429:N"`` (429 with ``Retry-After: N``), ``"slow:S"`` (answer after S
seconds) or ``"drop"`` (close the connection without an answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="


@dataclass
class Request:
    """One request as received: headers, body, arrival time, whether it verified."""

    headers: dict[str, str]
    body: bytes
    at: float
    verified: bool

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request; verifies it with each secret in ``secrets``."""

    secrets: tuple[str, ...] = (SECRET,)
    faults: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    fail_all: str | None = None
    requests: list[Request] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    overlaps: list[str] = field(default_factory=list)
    key_of: Any = None  # request -> key, to catch two requests of one key at once
    delay: float = 0.0
    status_for: Any = None  # request -> a status to answer with, or None
    url: str = ""
    _runner: web.AppRunner | None = None

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except Exception:
                return False
        return True

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen = Request(headers, body, time.monotonic(), self.verify(headers, body))
        self.requests.append(seen)
        key = self.key_of(seen) if self.key_of is not None else None
        if key is not None:
            self.in_flight[key] += 1
            if self.in_flight[key] > 1:
                self.overlaps.append(key)
        try:
            return await self._answer(request, seen)
        finally:
            if key is not None:
                self.in_flight[key] -= 1

    async def _answer(self, request: web.Request, seen: Request) -> web.StreamResponse:
        queue = self.faults.get(seen.webhook_id)
        fault = queue.pop(0) if queue else self.fail_all
        if fault is None and self.status_for is not None:
            status = self.status_for(seen)
            fault = None if status is None else str(status)
        if self.delay:
            await asyncio.sleep(self.delay)
        if fault is None:
            return web.Response(status=204)
        if fault == "drop":
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(0.05)
            return web.Response(status=204)
        if fault.startswith("slow:"):
            await asyncio.sleep(float(fault.split(":")[1]))
            return web.Response(status=204)
        if fault.startswith("429:"):
            return web.Response(status=429, headers={"Retry-After": fault.split(":")[1]})
        return web.Response(status=int(fault))

    def first_seen(self) -> list[Request]:
        """The first verified request of each webhook-id, in arrival order."""
        firsts: dict[str, Request] = {}
        for request in self.requests:
            if request.verified and request.webhook_id not in firsts:
                firsts[request.webhook_id] = request
        return list(firsts.values())

    async def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=tls)
        await site.start()
        ((_, bound, *_),) = self._runner.addresses
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{bound}/hook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.contextmanager
def receiver_on_thread(server: Receiver) -> Iterator[Receiver]:
    """Serve ``server`` on its own thread and loop (for tests that block on subprocesses)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10), "the webhook receiver did not start"
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
