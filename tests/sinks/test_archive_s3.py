"""The archive sink on the local stack's S3, over HTTP with botocore (no mocked client)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from shardline.aws.settings import AwsSettings
from shardline.sinks.archive import ArchiveSink
from shardline.sinks.archive_layout import parse_file_name
from shardline.sinks.base import SinkError
from tests.integration.support import unique
from tests.sinks.archive_support import SHARD, change, context, started, write

pytestmark = pytest.mark.integration


def s3(stack: Any) -> Any:
    return boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1")


def bucket(stack: Any) -> str:
    name = unique("archive").lower().replace("_", "-")
    s3(stack).create_bucket(Bucket=name)
    return name


def keys(stack: Any, name: str, prefix: str = "") -> list[str]:
    pages = s3(stack).get_paginator("list_objects_v2").paginate(Bucket=name, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def ctx(stack: Any) -> Any:
    return context(aws=AwsSettings(endpoint_url=stack.endpoint_url, region="us-east-1"))


def test_parquet_objects_under_the_prefix_resume_and_read_back(local_stack: Any) -> None:
    name = bucket(local_stack)
    url = f"s3://{name}/cdc/orders?format=parquet&sse=AES256"
    write(started(url, ctx(local_stack)), [change(i) for i in range(1, 11)])
    write(started(url, ctx(local_stack)), [change(i) for i in range(1, 21)])  # a replay
    found = keys(local_stack, name)
    assert all(k.startswith("cdc/orders/table=Orders/date=2026-11-18/hour=11/") for k in found)
    ranges = sorted(parse_file_name(k.rsplit("/", 1)[1])[1:] for k in found)  # type: ignore[index]
    assert ranges == [(1, 10), (11, 20)]
    seqs: list[str] = []
    for key in found:
        body = s3(local_stack).get_object(Bucket=name, Key=key)["Body"].read()
        seqs += pq.read_table(io.BytesIO(body)).column("sequence_number").to_pylist()
    assert sorted(map(int, seqs)) == list(range(1, 21))


def test_large_files_go_as_a_completed_multipart_upload(local_stack: Any) -> None:
    name = bucket(local_stack)
    sink = started(f"s3://{name}/big?format=jsonl&compression=none", ctx(local_stack))
    store: Any = sink.store
    store.multipart_bytes = store.part_bytes = 5 << 20  # S3's smallest part
    records = [change(i, new={"pk": {"S": "a"}, "blob": {"S": "y" * 4000}}) for i in range(3000)]
    write(sink, records)
    (key,) = keys(local_stack, name)
    head = s3(local_stack).head_object(Bucket=name, Key=key)
    assert "-" in head["ETag"]  # a multipart object's ETag names its parts
    uploads = s3(local_stack).list_multipart_uploads(Bucket=name).get("Uploads", [])
    assert uploads == []


def test_missing_bucket_is_one_line_at_start(local_stack: Any) -> None:
    url = f"s3://{unique('missing').lower()}/p?format=jsonl"
    with pytest.raises(SinkError) as caught:
        started(url, ctx(local_stack))
    message = str(caught.value)
    assert message.startswith(f"sink {url.split('?')[0]}") and "\n" not in message
    assert "does not exist" in message and not caught.value.retriable


def test_bucket_deleted_while_running_fails_the_batch_and_publishes_nothing(
    local_stack: Any,
) -> None:
    name = bucket(local_stack)
    sink = started(f"s3://{name}/p?format=jsonl", ctx(local_stack))
    s3(local_stack).delete_bucket(Bucket=name)
    writer = sink.open_shard(SHARD)
    with pytest.raises(SinkError) as caught:
        asyncio.run(writer.write([change(1)]))
    assert "does not exist" in str(caught.value)


def test_aws_endpoint_url_s3_is_honoured(local_stack: Any) -> None:
    from shardline.sinks.registry import sink_from_url

    name = bucket(local_stack)
    sink = sink_from_url(
        f"s3://{name}/e?format=jsonl", environ={"AWS_ENDPOINT_URL_S3": local_stack.endpoint_url}
    )
    assert isinstance(sink, ArchiveSink)
    asyncio.run(sink.start(context(aws=AwsSettings(endpoint_url="http://127.0.0.1:9"))))
    write(sink, [change(1)])
    assert len(keys(local_stack, name)) == 1


def test_denied_access_is_one_line() -> None:
    """A fake (botocore's Stubber): the local stack does not enforce IAM, so it cannot deny."""
    from botocore.stub import Stubber

    from shardline.sinks.archive_store import S3Store

    store = S3Store("locked", "p", "s3://locked/p", region="us-east-1")
    client = store._s3()
    with Stubber(client) as stub:
        stub.add_client_error("head_bucket", "403", "Forbidden", 403)
        stub.add_client_error("put_object", "AccessDenied", "Access Denied", 403)
        with pytest.raises(SinkError) as at_start:
            asyncio.run(store.check())
        with pytest.raises(SinkError) as on_write:
            asyncio.run(store.publish("a/b.parquet", b"x"))
    for caught in (at_start, on_write):
        message = str(caught.value)
        assert message.startswith("sink s3://locked/p: cannot ") and "\n" not in message
        assert "access to bucket locked is denied" in message and not caught.value.retriable
