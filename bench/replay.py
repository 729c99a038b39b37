"""A loopback DynamoDB Streams replay server for the benchmarks (run in its own process).

It answers DescribeStream, GetShardIterator and GetRecords for ``--shards`` open shards
that never end. In ``full`` mode every GetRecords answers a page of ``--records``
pre-generated MODIFY records (``pages.make_record``: NEW_AND_OLD_IMAGES, ~1 KB items, every
attribute type) with sequence numbers that keep increasing, so a consumer that drops
records at or below its position sees every page as new. In ``empty`` mode every page is
empty (an idle shard). Bodies are spliced from pre-encoded bytes and carry
``x-amz-crc32``, as the service's answers do; the server does no JSON work per page.

Iterators are ``replay|<shard index>|<page>|<offset>``. Sequence number of record ``r`` of
page ``p``: ``10**20 + p * 1000 + r`` (21 digits).

    python bench/replay.py --shards 8 --mode full     # prints "READY <port>", serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import zlib
from typing import Any

import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pages

STREAM_ARN = (
    "arn:aws:dynamodb:us-east-1:123456789012:table/bench-replay/stream/2024-06-01T00:00:00.000"
)
TARGET_PREFIX = "DynamoDBStreams_20120810."
SEQUENCE_BASE = 10**20
PAGE_STRIDE = 1000
_PLACEHOLDER = "@@SEQ@@"


def shard_id(index: int) -> str:
    return f"shardId-{1_700_000_000_000:020d}-{index:08x}"


def sequence_number(page: int, offset: int) -> str:
    return str(SEQUENCE_BASE + page * PAGE_STRIDE + offset)


class Replay:
    """The pre-encoded records and the three operations."""

    def __init__(self, shards: int, records: int, mode: str, seed: int) -> None:
        self.shards = [shard_id(i) for i in range(shards)]
        self.index = {sid: i for i, sid in enumerate(self.shards)}
        self.records = records
        self.mode = mode
        rng = random.Random(seed)
        self.parts: list[tuple[bytes, bytes]] = []
        for i in range(records if mode == "full" else 0):
            record = pages.make_record(rng, i)
            record["dynamodb"]["SequenceNumber"] = _PLACEHOLDER
            head, tail = orjson.dumps(record).split(_PLACEHOLDER.encode())
            self.parts.append((head, tail))

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        if (params.get("ShardFilter") or {}).get("Type") == "CHILD_SHARDS":
            listed: list[str] = []  # open shards never have children
            last = None
        else:
            start = params.get("ExclusiveStartShardId")
            first = self.index[start] + 1 if start in self.index else 0
            limit = int(params.get("Limit") or 100)
            listed = self.shards[first : first + limit]
            last = listed[-1] if first + limit < len(self.shards) else None
        description: dict[str, Any] = {
            "StreamArn": STREAM_ARN,
            "StreamLabel": "2024-06-01T00:00:00.000",
            "StreamStatus": "ENABLED",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "TableName": "bench-replay",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "Shards": [
                {
                    "ShardId": sid,
                    "SequenceNumberRange": {"StartingSequenceNumber": sequence_number(0, 0)},
                }
                for sid in listed
            ],
        }
        if last:
            description["LastEvaluatedShardId"] = last
        return {"StreamDescription": description}

    def iterator(self, params: dict[str, Any]) -> dict[str, Any]:
        index = self.index[params["ShardId"]]
        kind = params["ShardIteratorType"]
        page = offset = 0
        if kind in ("AFTER_SEQUENCE_NUMBER", "AT_SEQUENCE_NUMBER"):
            position = int(params["SequenceNumber"]) - SEQUENCE_BASE
            page, offset = divmod(position, PAGE_STRIDE)
            offset += kind == "AFTER_SEQUENCE_NUMBER"
            if offset >= self.records:
                page, offset = page + 1, 0
        return {"ShardIterator": f"replay|{index}|{page}|{offset}"}

    def get_records(self, params: dict[str, Any]) -> bytes:
        _, index, page_text, offset_text = params["ShardIterator"].split("|")
        page, offset = int(page_text), int(offset_text)
        if self.mode == "empty" or not self.parts:
            following = f"replay|{index}|{page}|{offset}"
            return b'{"Records":[],"NextShardIterator":"' + following.encode() + b'"}'
        end = min(self.records, offset + int(params.get("Limit") or 1000))
        base = SEQUENCE_BASE + page * PAGE_STRIDE
        chunks = []
        for r in range(offset, end):
            head, tail = self.parts[r]
            chunks.append(head + str(base + r).encode() + tail)
        following = (
            f"replay|{index}|{page + 1}|0"
            if end >= self.records
            else f"replay|{index}|{page}|{end}"
        )
        return (
            b'{"Records":['
            + b",".join(chunks)
            + b'],"NextShardIterator":"'
            + following.encode()
            + b'"}'
        )


class HttpProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive server: POST with Content-Length in, one answer out.

    aiohttp.web costs ~300 us a request; a thousand idle shards polled twice a second
    would make the server, not the consumer, the bottleneck.
    """

    def __init__(self, replay: Replay) -> None:
        self.replay = replay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            status, payload = self.answer(headers.get("x-amz-target", ""), body)
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/x-amz-json-1.0\r\n"
                b"x-amzn-RequestId: REPLAY\r\nx-amz-crc32: "
                + str(zlib.crc32(payload)).encode()
                + b"\r\nContent-Length: "
                + str(len(payload)).encode()
                + b"\r\n\r\n"
                + payload
            )

    def answer(self, target: str, body: bytes) -> tuple[bytes, bytes]:
        operation = target.removeprefix(TARGET_PREFIX)
        params = orjson.loads(body or b"{}")
        if operation == "GetRecords":
            return b"200 OK", self.replay.get_records(params)
        if operation == "GetShardIterator":
            return b"200 OK", orjson.dumps(self.replay.iterator(params))
        if operation == "DescribeStream":
            return b"200 OK", orjson.dumps(self.replay.describe(params))
        error = {"__type": "com.amazonaws#ValidationException", "message": operation}
        return b"400 Bad Request", orjson.dumps(error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--mode", choices=("full", "empty"), default="full")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    replay = Replay(args.shards, args.records, args.mode, args.seed)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: HttpProtocol(replay), "127.0.0.1", args.port, backlog=2048
        )
        print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
