"""Where archive files go: a local directory or an S3 bucket, each file visible only complete.

* Local: the bytes go to a hidden temporary name in the final directory (readers skip
  names starting with ``.``), are fsynced, renamed over the final name, and the directory
  is fsynced; new directories are fsynced into their parents.
* S3: one ``PutObject``, or a multipart upload above ``multipart_bytes`` that becomes
  visible only when ``CompleteMultipartUpload`` succeeds (aborted on failure).

Both raise :class:`~shardline.sinks.base.SinkError` naming the sink: push-back
(``retriable``) for a full disk, throttling, a 5xx or a connection failure; permanent for
a directory that cannot be written, a missing bucket or denied access. Blocking work runs
on a thread; botocore brings credentials, signing, retries and ``AWS_ENDPOINT_URL_S3``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shardline.sinks.archive_layout import temporary_name
from shardline.sinks.base import SinkError

__all__ = ["ArchiveStore", "LocalStore", "S3Store"]

#: Asked right before a file becomes visible; ``False`` abandons it (``None``: always go on).
Proceed = Callable[[], bool] | None

_PUSHBACK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN})


class ArchiveStore:
    """A place files are published to and listed from, by paths relative to its root."""

    name: str = "archive"

    async def check(self) -> None:
        """Raise :class:`SinkError` when files cannot be written here."""
        raise NotImplementedError

    async def list_names(self, prefixes: Sequence[str]) -> list[str]:
        """Relative paths of the published files under each prefix (temporaries left out)."""
        raise NotImplementedError

    async def publish(self, path: str, data: bytes, proceed: Proceed = None) -> None:
        """Make ``data`` visible at ``path``, complete or not at all; durable on return.

        ``proceed`` is asked right before the file becomes visible (the rename, the PUT,
        the completion); ``False`` (the lease was lost meanwhile) abandons the file.
        """
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections."""


class LocalStore(ArchiveStore):
    """Files under ``root`` on a local (or mounted) file system."""

    def __init__(self, root: str, name: str) -> None:
        self.root = Path(root)
        self.name = name

    def _error(self, what: str, exc: OSError) -> SinkError:
        reason = exc.strerror or str(exc)
        retriable = exc.errno in _PUSHBACK_ERRNOS
        return SinkError(self.name, f"cannot {what}: {reason}", retriable=retriable)

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        try:
            self._make_dirs(self.root)
            probe = self.root / f".shardline-probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise self._error(f"write to directory {self.root}", exc) from exc

    async def list_names(self, prefixes: Sequence[str]) -> list[str]:
        return await asyncio.to_thread(self._list, prefixes)

    def _list(self, prefixes: Sequence[str]) -> list[str]:
        names: list[str] = []
        for prefix in prefixes:
            top = self.root / prefix
            try:
                for directory, _, files in os.walk(top):
                    relative = Path(directory).relative_to(self.root)
                    names += [str(relative / f) for f in files if not f.startswith(".")]
            except OSError as exc:
                raise self._error(f"list {top}", exc) from exc
        return names

    async def publish(self, path: str, data: bytes, proceed: Proceed = None) -> None:
        await asyncio.to_thread(self._publish, path, data, proceed)

    def _publish(self, path: str, data: bytes, proceed: Proceed = None) -> None:
        final = self.root / path
        temporary = final.parent / temporary_name(final.name, uuid.uuid4().hex[:12])
        try:
            self._make_dirs(final.parent)
            _write_synced(temporary, data)
            if proceed is not None and not proceed():
                temporary.unlink(missing_ok=True)
                raise SinkError(self.name, f"lease lost: {final.name} not published")
            os.replace(temporary, final)
            _fsync_directory(final.parent)
        except OSError as exc:
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass
            raise self._error(f"write {final}", exc) from exc

    def _make_dirs(self, directory: Path) -> None:
        """Create ``directory`` and missing parents, each fsynced into its parent."""
        missing: list[Path] = []
        current = directory
        while not current.exists():
            missing.append(current)
            current = current.parent
        for created in reversed(missing):
            try:
                created.mkdir()
            except FileExistsError:
                continue  # another shard made it meanwhile
            _fsync_directory(created.parent)


def _write_synced(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(descriptor, view)
            view = view[written:]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_S3_PUSHBACK = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
     "ServiceUnavailable", "503", "500", "RequestTimeTooSkewed"}
)  # fmt: skip


class S3Store(ArchiveStore):
    """Objects under ``s3://bucket/prefix`` through a botocore client."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        name: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        put_options: dict[str, str] | None = None,
        multipart_bytes: int = 64 << 20,
        part_bytes: int = 16 << 20,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.name = name
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile
        self.put_options = dict(put_options or {})
        self.multipart_bytes = multipart_bytes
        self.part_bytes = part_bytes
        self._client: Any = None

    def use_source_settings(self, aws: Any) -> None:
        """Default to the source's region, profile and endpoint (a local stack serves both)."""
        if aws is None:
            return
        if self.endpoint_url is None and self.region is None:
            self.endpoint_url = aws.endpoint_url
        self.region = self.region or aws.region
        self.profile = self.profile or aws.profile

    def _s3(self) -> Any:
        if self._client is None:
            import botocore.config
            import botocore.session

            from shardline.aws.endpoints import region_or_aws_region

            session = botocore.session.Session(profile=self.profile)
            self._client = session.create_client(
                "s3",
                region_name=region_or_aws_region(self.region),
                endpoint_url=self.endpoint_url,
                config=botocore.config.Config(
                    retries={"max_attempts": 5, "mode": "standard"},
                    max_pool_connections=32,
                ),
            )
        return self._client

    def _error(self, what: str, exc: Exception) -> SinkError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            message = _s3_message(code, self.bucket) or error.get("Message") or code
            retriable = code in _S3_PUSHBACK or int(status or 0) >= 500
            return SinkError(self.name, f"cannot {what}: {message}", retriable=retriable)
        return SinkError(self.name, f"cannot {what}: {exc}", retriable=True)

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        try:
            self._s3().head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self._error(f"reach bucket {self.bucket}", exc) from exc

    async def list_names(self, prefixes: Sequence[str]) -> list[str]:
        return await asyncio.to_thread(self._list, prefixes)

    def _list(self, prefixes: Sequence[str]) -> list[str]:
        names: list[str] = []
        try:
            paginator = self._s3().get_paginator("list_objects_v2")
            for prefix in prefixes:
                pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
                for page in pages:
                    names += [o["Key"][len(self.prefix) :] for o in page.get("Contents", [])]
        except Exception as exc:
            raise self._error(f"list s3://{self.bucket}/{self.prefix}", exc) from exc
        return names

    async def publish(self, path: str, data: bytes, proceed: Proceed = None) -> None:
        await asyncio.to_thread(self._publish, path, data, proceed)

    def _publish(self, path: str, data: bytes, proceed: Proceed = None) -> None:
        key = self.prefix + path
        try:
            if len(data) <= self.multipart_bytes:
                _check_proceed(proceed, self.name, key)
                self._s3().put_object(Bucket=self.bucket, Key=key, Body=data, **self.put_options)
            else:
                self._multipart(key, data, proceed)
        except SinkError:
            raise
        except Exception as exc:
            raise self._error(f"write s3://{self.bucket}/{key}", exc) from exc

    def _multipart(self, key: str, data: bytes, proceed: Proceed = None) -> None:
        """Upload in parts; the object appears only when the upload is completed."""
        s3 = self._s3()
        upload = s3.create_multipart_upload(Bucket=self.bucket, Key=key, **self.put_options)
        upload_id = upload["UploadId"]
        try:
            parts = []
            view = memoryview(data)
            for number, start in enumerate(range(0, len(data), self.part_bytes), start=1):
                chunk = bytes(view[start : start + self.part_bytes])
                answer = s3.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            _check_proceed(proceed, self.name, key)
            s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except Exception:
            try:
                s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception:
                pass  # a lifecycle rule for incomplete uploads cleans up what is left
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _check_proceed(proceed: Proceed, name: str, key: str) -> None:
    if proceed is not None and not proceed():
        raise SinkError(name, f"lease lost: {key} not published")


def _s3_message(code: str, bucket: str) -> str:
    if code in ("NoSuchBucket", "404"):
        return f"bucket {bucket} does not exist (create it, or fix the URL)"
    if code in ("AccessDenied", "403", "Forbidden"):
        return f"access to bucket {bucket} is denied (see shardline iam-policy)"
    return ""
