"""Client CPU per request: shardline's HttpPool against aiohttp's client (an experiment,
not in ``make bench``).

A keep-alive loopback server runs in another process (uvloop), so only the client's CPU
is measured (``time.process_time``). Every configuration -- asyncio or uvloop loop,
sequential or 200 concurrent requests, aiohttp or HttpPool -- runs once per round, rounds
interleaved so machine noise hits all alike; the table shows the median and minimum.

    .venv/bin/python bench/http_client.py [REQUESTS] [ROUNDS]     # default 5000 5
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import cast

import aiohttp
import uvloop

from shardline.aws.transport.http import HttpPool

BODY = b'{"ShardIterator":"' + b"x" * 300 + b'","Limit":1000}'
HEADERS = {
    "X-Amz-Target": "DynamoDBStreams_20120810.GetRecords",
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Date": "20250101T000000Z",
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20250101/us-east-1/dynamodb/"
    "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64,
    "User-Agent": "shardline/0.1 (aws-json-1.0)",
    "Accept-Encoding": "identity",
}
ANSWER = b'{"NextShardIterator":"' + b"y" * 300 + b'","Records":[]}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: Server\r\nDate: Wed, 01 Jan 2025 00:00:00 GMT\r\n"
    b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: %d\r\nConnection: keep-alive\r\n"
    b"x-amzn-RequestId: ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
    b"x-amz-crc32: 1234567890\r\n\r\n" % len(ANSWER)
) + ANSWER
LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


class Echo(asyncio.Protocol):
    transport: asyncio.Transport
    buf: bytes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream server's transport (uvloop's is not an asyncio.Transport subclass)
        self.transport, self.buf = cast(asyncio.Transport, transport), b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        out = []
        while (end := buf.find(b"\r\n\r\n")) >= 0:
            length = LENGTH.search(buf, 0, end)
            assert length is not None, "a request without Content-Length"
            size = int(length[1])
            if len(buf) < end + 4 + size:
                break
            buf = buf[end + 4 + size :]
            out.append(RESPONSE)
        self.buf = buf
        if out:
            self.transport.write(b"".join(out))


async def serve() -> None:
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


async def bench(url: str, kind: str, mode: str, n: int) -> tuple[float, float]:
    one: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    if kind == "HttpPool":
        pool = HttpPool(url)

        async def one_pool() -> None:
            r = await pool.post(BODY, HEADERS)
            assert r.status == 200 and len(r.body) == len(ANSWER)

        one, close = one_pool, pool.close
    else:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=30),
        )

        async def one_session() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as r:
                body = await r.read()
                assert r.status == 200 and len(body) == len(ANSWER)
                r.headers.get("x-amz-crc32")

        one, close = one_session, session.close

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    tasks = 1 if mode == "sequential" else 200
    await asyncio.gather(*(worker(1000 // tasks + 1) for _ in range(tasks)))  # warm up
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(n // tasks) for _ in range(tasks)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await close()
    done = n // tasks * tasks
    return cpu / done * 1e6, wall / done * 1e6


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        uvloop.run(serve())
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    server = subprocess.Popen([sys.executable, __file__, "serve"], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/"
        loops = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
        configs = [
            (loop, m, k)
            for loop in loops
            for m in ("sequential", "concurrent")
            for k in ("aiohttp", "HttpPool")
        ]
        results: dict[tuple[str, str, str], list[tuple[float, float]]] = {c: [] for c in configs}
        for _ in range(rounds):  # interleaved, so machine noise hits every config alike
            for loop_name, mode, kind in configs:
                with asyncio.Runner(loop_factory=loops[loop_name]) as runner:
                    results[loop_name, mode, kind].append(runner.run(bench(url, kind, mode, n)))
        print(f"{n} requests x {rounds} rounds; client CPU (process_time) and wall, us/request")
        print(
            f"{'loop':8} {'mode':11} {'client':9} {'CPU median':>10} {'CPU min':>8} {'wall med':>9}"
        )
        for (loop_name, mode, kind), runs in results.items():
            cpu = sorted(r[0] for r in runs)
            wall = sorted(r[1] for r in runs)
            print(
                f"{loop_name:8} {mode:11} {kind:9} {cpu[len(cpu) // 2]:10.1f} {cpu[0]:8.1f}"
                f" {wall[len(wall) // 2]:9.1f}"
            )
    finally:
        server.kill()


if __name__ == "__main__":
    main()
