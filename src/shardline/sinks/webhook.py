"""Signed webhooks (``https://...``, ``http://...``): every change POSTed, in order per key.

Each request is signed per Standard Webhooks (:mod:`.webhook_sign`): ``webhook-id`` is the
event id (the same on every retry), ``webhook-timestamp`` the time of the attempt,
``webhook-signature`` one ``v1,...`` per secret. One change per request, or ``batch=N``
changes as a JSON array (``webhook-id`` then names the batch's events).

Order per key (:mod:`.keyorder`): within a batch, the changes of one key are sent one
after another and a later one only once the earlier one was delivered; different keys go
out concurrently (``concurrency``) over keep-alive connections. Retries
(:mod:`.send_policy`): network errors, timeouts and ``retry_on`` statuses (408, 429, 5xx)
are retried inside the write with backoff and jitter, after ``Retry-After`` when given;
after ``retries`` tries, or when ``Retry-After`` asks for more than 5 s, the batch is
pushed back (the shard waits -- at least ``Retry-After`` -- and writes again, without
limit; a worker that is stopping stops waiting). Other statuses are permanent: the write
fails and the batch takes the delivery path's retry / bisect / ``on_failure`` route.
Changes a failed write already delivered are not sent again when the batch is retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import urlsplit

from shardline.errors import ConfigError
from shardline.records import StreamRecord
from shardline.redact import SECRETS, secrets_in_options, secrets_in_url
from shardline.retry import Retry, WaitTooLong
from shardline.sinks.base import ShardSink, Sink, SinkContext, SinkError, SnapshotRow
from shardline.sinks.formats import cloudevent_headers, encode_batch
from shardline.sinks.keyorder import plan_units, run_units
from shardline.sinks.notify import (
    MESSAGE_OPTIONS,
    Delivered,
    Messages,
    Outgoing,
    RateLimiter,
    message_format,
    snapshot_records,
)
from shardline.sinks.options import COMMON_OPTIONS, SinkOptions, mask_url, parse_bool
from shardline.sinks.send_policy import (
    DEFAULT_RETRY_ON,
    RetryPolicy,
    parse_retry_after,
    parse_retry_on,
)
from shardline.sinks.webhook_sign import parse_secrets, signature_header
from shardline.sinks.webhook_transport import (
    NetworkError,
    Transport,
    make_transport,
    proxied,
    tls_context,
)

__all__ = ["WEBHOOK_OPTIONS", "WebhookQuery", "WebhookSink"]

log = logging.getLogger("shardline.sinks.webhook")

WEBHOOK_OPTIONS: Final = MESSAGE_OPTIONS | frozenset(
    {"secret", "batch", "concurrency", "max_rps", "timeout", "connect_timeout", "retries",
     "retry_on", "ca_bundle", "tls_verify", "cloudevents_mode", "headers"}
)  # fmt: skip
_USER_AGENT: Final = "shardline-webhooks/0.1"
_INLINE_WAIT: Final = 5.0  # longer waits are pushed back to the shard, which stops promptly


class WebhookQuery(frozenset[str]):
    """The query parameters a webhook URL keeps: all but shardline's options, so the
    receiver's own parameters (``?token=...``) stay in the URL."""

    def __contains__(self, key: object) -> bool:
        name = str(key)
        return name not in WEBHOOK_OPTIONS | COMMON_OPTIONS and not name.startswith("header.")


class _PushBack(Exception):
    """Retried ``retries`` times in the write (or told to wait longer than a write waits);
    the shard waits and writes again."""

    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class _Refused(Exception):
    """A permanent answer: the failure path decides."""


class _TryAgain(Exception):
    """An answer (or a network failure) the policy retries; ``retry_after`` as asked."""

    def __init__(self, why: str, retry_after: float | None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class WebhookSink(Sink):
    """POSTs every change to one URL, signed, in order per key."""

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        messages: Messages | None = None,
        batch: int = 1,
        concurrency: int = 64,
        max_rps: float | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        policy: RetryPolicy | None = None,
        ca_bundle: str | None = None,
        tls_verify: bool = True,
        binary: bool = False,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or mask_url(url)
        # built in code as well as from a URL: its secrets are never printed
        SECRETS.add(
            *secrets_in_url(url), *secrets_in_options({"secret": secret, "headers": headers or {}})
        )
        self.url, basic = _without_userinfo(url)
        if batch < 1 or concurrency < 1 or retries < 0 or timeout <= 0 or connect_timeout <= 0:
            raise ConfigError(
                f"sink {self.name}: batch and concurrency must be at least 1, retries at "
                "least 0, timeouts positive"
            )
        try:
            self._keys = parse_secrets(secret) if secret is not None else ()
            self._limiter = RateLimiter(max_rps)
        except ValueError as exc:
            raise ConfigError(f"sink {self.name}: {exc}") from None
        self.messages = messages or Messages(self.name, message_format(_empty(url)), None)
        if binary and (batch > 1 or self.messages.format.kind != "cloudevents"):
            raise ConfigError(
                f"sink {self.name}: cloudevents_mode=binary needs format=cloudevents and batch=1"
            )
        self.batch, self.concurrency, self.retries = batch, concurrency, retries
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.policy = policy or RetryPolicy()
        self.ca_bundle, self.tls_verify, self.binary = ca_bundle, tls_verify, binary
        self.headers = {**basic, **(headers or {})}
        self._transport: Transport | None = None
        self._retry = Retry(
            self._retry_delay,
            retriable=lambda e: isinstance(e, _TryAgain),
            limit=retries,
            max_wait=_INLINE_WAIT,
        )

    @classmethod
    def from_options(cls, options: SinkOptions) -> WebhookSink:
        """Build from a parsed ``https://host/path?secret_env=VAR&batch=10...``."""
        headers = _headers(options)
        options.reject_unknown(WEBHOOK_OPTIONS)
        name = options.name
        secret = options.secret()
        given = options.take("secret")
        fmt = message_format(options)
        mode = str(options.take("cloudevents_mode", "structured")).lower()
        if mode not in ("structured", "binary"):
            raise ConfigError(f"sink {name}: cloudevents_mode must be structured or binary")
        retry_on = options.take("retry_on", DEFAULT_RETRY_ON, parse_retry_on)
        if isinstance(retry_on, str):
            retry_on = parse_retry_on(retry_on)
        return cls(
            options.url,
            secret=secret if secret is not None else (None if given is None else str(given)),
            messages=Messages(name, fmt, None),
            batch=options.take("batch", 1, int),
            concurrency=options.take("concurrency", 64, int),
            max_rps=options.take("max_rps", None, float),
            timeout=options.take("timeout", 10.0, float),
            connect_timeout=options.take("connect_timeout", 5.0, float),
            retries=options.take("retries", 3, int),
            policy=RetryPolicy(retry_on=retry_on),
            ca_bundle=options.take("ca_bundle"),
            tls_verify=options.take("tls_verify", True, parse_bool),
            binary=mode == "binary",
            headers=headers,
            name=name,
        )

    # --- life ----------------------------------------------------------------------------

    async def start(self, context: SinkContext) -> None:
        """Learn the source; connections open on the first request."""
        self.messages.transform = self.transform
        if self.binary and self.transform is not None:
            raise SinkError(self.name, "cloudevents_mode=binary cannot send a transform's output")
        self.messages.bind(context)
        if not self._keys:
            log.warning("sink %s: no secret given; requests are not signed", self.name)
        if not self.tls_verify:
            log.warning("sink %s: TLS verification is off (tls_verify=false)", self.name)
        try:
            tls = tls_context(self.ca_bundle, self.tls_verify)
        except (OSError, ValueError) as exc:
            raise SinkError(self.name, f"cannot load ca_bundle: {exc}") from exc
        try:
            self._transport = make_transport(
                self.url, tls, connections=self.concurrency, connect_timeout=self.connect_timeout
            )
        except ValueError as exc:
            raise SinkError(self.name, str(exc)) from exc

    async def check(self, context: SinkContext) -> list[str]:
        """DNS, TCP connect and TLS handshake to the receiver (no request is sent)."""
        try:
            await self.start(context)
            parts = urlsplit(self.url)
            if proxied(self.url):
                return []  # through a proxy: the proxy is reached on the first request
            tls = tls_context(self.ca_bundle, self.tls_verify) if parts.scheme == "https" else None
            port = parts.port or (443 if parts.scheme == "https" else 80)
            connect = asyncio.open_connection(parts.hostname, port, ssl=tls)
            _, writer = await asyncio.wait_for(connect, self.connect_timeout)
            writer.close()
        except SinkError as exc:
            return [str(exc)]
        except (OSError, TimeoutError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            return [f"sink {self.name}: cannot connect: {' '.join(reason.split())}"]
        finally:
            await self.close()
        return []

    async def close(self) -> None:
        """Close the connections."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()

    def open_shard(self, shard_id: str) -> ShardSink:
        """A writer for one shard lease (connections are shared)."""
        return _WebhookShard(self)

    async def write_snapshot(self, rows: Sequence[SnapshotRow]) -> None:
        """Send snapshot rows as changes (Debezium ``op`` ``r``, native ``snapshot: true``)."""
        records = snapshot_records(rows, self.messages.source.key_names)
        await _WebhookShard(self).write(records)

    # --- one request ---------------------------------------------------------------------

    async def send(self, chunk: Sequence[Outgoing], delivered: Delivered) -> None:
        """Deliver ``chunk`` in one request, retrying as the policy says."""
        body, message_id, headers = self._request(chunk)
        try:
            await self._retry.run(lambda: self._post_once(body, message_id, headers))
        except WaitTooLong as exc:  # a long Retry-After: the shard waits, stop-aware
            raise _PushBack(f"{exc.error}, Retry-After {exc.wait:g}s", exc.wait) from None
        except _TryAgain as exc:
            raise _PushBack(str(exc)) from None
        for message in chunk:
            delivered.add(message.event_id)

    async def _post_once(self, body: bytes, message_id: str, headers: dict[str, str]) -> None:
        """One try: delivered, or :class:`_TryAgain` / :class:`_Refused` as the policy says."""
        if self._limiter.limited:
            await self._limiter.wait()
        outcome, why, retry_after = await self._post(body, message_id, headers)
        if outcome == "failed":
            raise _Refused(why)
        if outcome == "retry":
            raise _TryAgain(why, retry_after)

    def _retry_delay(self, failures: int, error: Exception) -> float:
        asked = error.retry_after if isinstance(error, _TryAgain) else None
        return self.policy.delay(failures, asked)

    def _request(self, chunk: Sequence[Outgoing]) -> tuple[bytes, str, dict[str, str]]:
        fmt = self.messages.format
        if len(chunk) == 1 and self.batch == 1:
            message = chunk[0]
            if self.binary:
                headers, body = cloudevent_headers(message.record, fmt, self.messages.source)
                return body, message.event_id, headers
            return message.body, message.event_id, {"content-type": fmt.content_type}
        ids = "\n".join(m.event_id for m in chunk).encode()
        message_id = "batch_" + hashlib.sha256(ids).hexdigest()[:32]
        return (
            encode_batch([m.body for m in chunk]),
            message_id,
            {"content-type": fmt.batch_content_type},
        )

    async def _post(
        self, body: bytes, message_id: str, extra: dict[str, str]
    ) -> tuple[str, str, float | None]:
        """(outcome, why, Retry-After seconds) of one attempt."""
        transport = self._transport
        if transport is None:
            raise SinkError(self.name, "the sink is not started", retriable=True)
        timestamp = int(time.time())
        headers = {**self.headers, **extra, "user-agent": _USER_AGENT, "webhook-id": message_id,
                   "webhook-timestamp": str(timestamp)}  # fmt: skip
        if self._keys:
            headers["webhook-signature"] = signature_header(self._keys, message_id, timestamp, body)
        try:
            status, answer = await transport.post(body, headers, self.timeout)
        except NetworkError as exc:
            return "retry", str(exc), None
        outcome = self.policy.classify(status)
        return outcome, f"HTTP {status}", parse_retry_after(answer.get("retry-after"))


class _WebhookShard(ShardSink):
    def __init__(self, sink: WebhookSink) -> None:
        self.sink = sink
        self.delivered = Delivered()

    async def write(self, records: Sequence[StreamRecord]) -> None:
        sink = self.sink
        self.refuse_if_lost(f"sink {sink.name}")
        messages = sink.messages.outgoing(records)
        pending = self.delivered.pending(messages)
        units = plan_units(pending, lambda m: m.key, batch=sink.batch, concurrency=sink.concurrency)

        async def send(chunk: Sequence[Outgoing]) -> None:
            await sink.send(chunk, self.delivered)

        errors = await run_units(units, send, batch=sink.batch, concurrency=sink.concurrency)
        if not errors:
            self.delivered.forget(messages)
            return
        refused = [e for e in errors if not isinstance(e, _PushBack)]
        first = refused[0] if refused else errors[0]
        waits = [e.retry_after for e in errors if isinstance(e, _PushBack) and e.retry_after]
        raise SinkError(
            sink.name,
            f"{len(errors)} of {len(units)} key groups not delivered: {first}",
            retriable=not refused,
            retry_after=max(waits) if waits and not refused else None,
        ) from first


def _headers(options: SinkOptions) -> dict[str, str]:
    """``headers = {Name = "value"}`` (pipeline file) and ``header.Name=value`` (URL)."""
    headers: dict[str, str] = {}
    given = options.take("headers")
    if isinstance(given, Mapping):
        headers.update({str(k): str(v) for k, v in given.items()})
    elif given is not None:
        raise ConfigError(f"sink {options.name}: headers must be a table of name = value")
    for key in [k for k in options.options if k.startswith("header.")]:
        headers[key[len("header.") :]] = str(options.options.pop(key))
    return headers


def _without_userinfo(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without ``user:password@``, and the ``Authorization: Basic`` header they make."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    import base64
    from urllib.parse import unquote, urlunsplit

    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    netloc = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, {"authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def _empty(url: str) -> SinkOptions:
    return SinkOptions(url, urlsplit(url).scheme, {})
