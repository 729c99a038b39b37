"""``shardline check``: reach the source and every sink without reading the stream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shardline.errors import ShardlineError
from shardline.sinks.base import Sink
from shardline.sinks.runtime import describe_source, table_of_stream_arn

__all__ = ["check_pipeline"]


async def check_pipeline(
    aws: Any, table: str | None, stream_arn: str | None, application: str, sinks: Sequence[Sink]
) -> tuple[list[str], list[str]]:
    """(what is fine, what is wrong), one line each; the source first, then each sink."""
    from shardline.aws.client import AwsJsonClient
    from shardline.streams.client import resolve_stream_arn

    fine: list[str] = []
    problems: list[str] = []
    try:
        dynamodb = AwsJsonClient.create("dynamodb", aws)
    except ShardlineError as exc:
        return fine, [f"source: {exc}"]
    try:
        name = table or table_of_stream_arn(stream_arn or "")
        arn = stream_arn or await resolve_stream_arn(dynamodb, name)
        context = await describe_source(dynamodb, name, arn, application, aws)
        fine.append(f"source: table {name}, stream {arn} ({context.stream_view_type})")
    except ShardlineError as exc:
        return fine, [f"source: {' '.join(str(exc).split())}"]
    finally:
        await dynamodb.close()
    for sink in sinks:
        found = await sink.check(context)
        problems += found
        if not found:
            fine.append(f"sink {sink.name}: reachable, target ready")
    return fine, problems
