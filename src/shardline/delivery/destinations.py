"""Failure destinations: where the records of a batch given up on are kept.

``on_failure`` is one of (Lambda's ARNs work as they are):

============================================  ==========================================
``arn:aws:sqs:REGION:ACCOUNT:QUEUE``          SQS ``SendMessage`` (also a queue URL
                                              ``https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE``)
``arn:aws:sns:REGION:ACCOUNT:TOPIC``          SNS ``Publish``
``arn:aws:s3:::BUCKET`` / ``s3://BUCKET/PREFIX``  S3 ``PutObject``, one object per document
``file:///ABSOLUTE/DIR``                      one ``.json`` file per document (atomic rename)
============================================  ==========================================

Sends go through botocore on a thread (they are rare); failures raise and the caller
retries, so a record is never dropped because its destination was down.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlparse

from shardline.errors import ConfigError

_ARN = re.compile(r"^arn:aws[a-z-]*:(sqs|sns|s3):([a-z0-9-]*):(\d*):(.+)$")
_QUEUE_URL = re.compile(r"^https?://[^/]+/(\d+)/([A-Za-z0-9_-]+(?:\.fifo)?)$")
_SQS_REGION = re.compile(r"sqs\.([a-z0-9-]+)\.amazonaws")
MESSAGE_LIMIT = 262_144  # SQS and SNS: 256 KiB

FORMS = (
    "arn:aws:sqs:REGION:ACCOUNT:QUEUE, an SQS queue URL, arn:aws:sns:REGION:ACCOUNT:TOPIC, "
    "arn:aws:s3:::BUCKET, s3://BUCKET/PREFIX or file:///DIR"
)


@dataclass(frozen=True)
class DestinationSpec:
    """A parsed ``on_failure`` value."""

    kind: str  # "sqs" | "sns" | "s3" | "file"
    target: str  # queue URL or ARN, topic ARN, bucket, or directory
    region: str | None = None
    account: str | None = None
    name: str | None = None
    prefix: str = ""


def parse_destination(uri: str) -> DestinationSpec:
    """Parse ``on_failure``; raises :class:`ConfigError` for anything unknown."""
    arn = _ARN.match(uri)
    if arn:
        return _from_arn(uri, arn.group(1), arn.group(2), arn.group(3), arn.group(4))
    queue = _QUEUE_URL.match(uri)
    if queue:
        region = _SQS_REGION.search(uri)
        return DestinationSpec(
            "sqs", uri, region.group(1) if region else None, queue.group(1), queue.group(2)
        )
    parsed = urlparse(uri)
    if parsed.scheme == "s3" and parsed.netloc:
        return DestinationSpec("s3", parsed.netloc, prefix=_prefix(parsed.path))
    if parsed.scheme == "file" and not parsed.netloc and parsed.path.startswith("/"):
        return DestinationSpec("file", parsed.path)
    raise ConfigError(f"unknown on_failure destination {uri!r}; use {FORMS}")


def _from_arn(uri: str, service: str, region: str, account: str, rest: str) -> DestinationSpec:
    if service == "s3":
        bucket, _, path = rest.partition("/")
        if region or account or not bucket:
            raise ConfigError(f"on_failure {uri!r}: an S3 ARN looks like arn:aws:s3:::BUCKET")
        return DestinationSpec("s3", bucket, prefix=_prefix(path))
    if not region or not account or ":" in rest:
        raise ConfigError(f"on_failure {uri!r}: expected arn:aws:{service}:REGION:ACCOUNT:NAME")
    return DestinationSpec(service, uri, region, account, rest)


def _prefix(path: str) -> str:
    path = path.strip("/")
    return f"{path}/" if path else ""


class Destination(Protocol):
    """Something a failure document can be sent to."""

    max_bytes: int | None

    async def send(self, name: str, body: bytes) -> None:
        """Store one document; ``name`` is a unique, readable file/object name."""


def document_name(shard_id: str, start: str, end: str, at: datetime | None = None) -> str:
    """``SHARD/YYYY/MM/DD/START-END-RANDOM.json``: sorts by shard, day, then position."""
    when = (at or datetime.now(UTC)).strftime("%Y/%m/%d")
    return f"{shard_id}/{when}/{start}-{end}-{uuid.uuid4().hex[:8]}.json"


def make_destination(
    uri: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
) -> Destination:
    """Build the destination for ``on_failure`` (clients are created on first send)."""
    spec = parse_destination(uri)
    if spec.kind == "file":
        return FileDestination(spec.target)
    clients = _Clients(spec.region or region, endpoint_url, profile)
    if spec.kind == "sqs":
        return SqsDestination(spec, clients)
    if spec.kind == "sns":
        return SnsDestination(spec, clients)
    return S3Destination(spec, clients)


class _Clients:
    """botocore clients from one session, created lazily on a thread (creation reads files).

    The region is the destination's own (from its URL or ARN), else the configured one,
    else ``AWS_REGION`` (which botocore alone ignores, but Lambda, ECS and the other SDKs
    set), else botocore's chain.
    """

    def __init__(self, region: str | None, endpoint_url: str | None, profile: str | None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile
        self._session: Any = None
        self._cache: dict[str, Any] = {}

    def get(self, service: str) -> Any:
        if service not in self._cache:
            import botocore.session

            from shardline.aws.endpoints import region_or_aws_region

            if self._session is None:
                self._session = botocore.session.Session(profile=self.profile)
            self._cache[service] = self._session.create_client(
                service,
                region_name=region_or_aws_region(self.region),
                endpoint_url=self.endpoint_url,
            )
        return self._cache[service]


class SqsDestination:
    """``SendMessage`` of each document to a standard queue."""

    max_bytes: int | None = MESSAGE_LIMIT

    def __init__(self, spec: DestinationSpec, clients: _Clients) -> None:
        self.spec = spec
        self._clients = clients
        self._url = spec.target if spec.target.startswith("http") else None

    def _send(self, body: bytes) -> None:
        client = self._clients.get("sqs")
        if self._url is None:
            answer = client.get_queue_url(
                QueueName=self.spec.name, QueueOwnerAWSAccountId=self.spec.account
            )
            self._url = str(answer["QueueUrl"])
        client.send_message(QueueUrl=self._url, MessageBody=body.decode())

    async def send(self, name: str, body: bytes) -> None:
        await asyncio.to_thread(self._send, body)


class SnsDestination:
    """``Publish`` of each document to a topic."""

    max_bytes: int | None = MESSAGE_LIMIT

    def __init__(self, spec: DestinationSpec, clients: _Clients) -> None:
        self.spec = spec
        self._clients = clients

    def _send(self, body: bytes) -> None:
        self._clients.get("sns").publish(TopicArn=self.spec.target, Message=body.decode())

    async def send(self, name: str, body: bytes) -> None:
        await asyncio.to_thread(self._send, body)


class S3Destination:
    """``PutObject`` of each document under ``PREFIX/SHARD/YYYY/MM/DD/``."""

    max_bytes: int | None = None

    def __init__(self, spec: DestinationSpec, clients: _Clients) -> None:
        self.spec = spec
        self._clients = clients

    def _send(self, name: str, body: bytes) -> None:
        self._clients.get("s3").put_object(
            Bucket=self.spec.target,
            Key=f"{self.spec.prefix}{name}",
            Body=body,
            ContentType="application/json",
        )

    async def send(self, name: str, body: bytes) -> None:
        await asyncio.to_thread(self._send, name, body)


class FileDestination:
    """One file per document under a local directory, written atomically."""

    max_bytes: int | None = None

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def _send(self, name: str, body: bytes) -> None:
        path = os.path.join(self.directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)

    async def send(self, name: str, body: bytes) -> None:
        await asyncio.to_thread(self._send, name, body)
