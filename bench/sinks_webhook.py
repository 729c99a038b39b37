"""Sinks: notifications -- signed webhook deliveries per second, shardline vs by hand.

``.venv/bin/python bench/sinks_webhook.py`` (``--changes``, ``--keys``, ``--batch``,
``--latency-seconds``). A receiver runs in its own process (a small asyncio HTTP/1.1
server: keep-alive, answers 204, verifies every Standard Webhooks signature with ``hmac``,
checks that each key's changes arrive in sequence order, records arrival times). Then:

* **requests, new connection**: the hand-written consumer of most examples --
  ``requests.post`` per change (a new TCP connection each), one after another, signed;
* **requests.Session**: the same over one keep-alive session;
* **shardline**: :class:`~shardline.sinks.webhook.WebhookSink` writing batches of
  ``--batch`` changes over ``--keys`` keys (per-key order, ``concurrency`` keys at once),
  on asyncio (uvloop when installed), in this one process (one core); CPU seconds of this
  process are reported beside the wall clock.

Variants alternate, ``--repeats`` (3) times; the figure is the median run (min..max
shown). Every variant delivers the same changes (``pages``-like records with ~200-byte images);
the receiver's counts, signature failures and order violations are shown per variant.

**Latency** (``--latency-seconds``, 0 to skip): the local stack, ``shardline run --sink
http://...`` in a subprocess (``--idle-time`` 0.2 s), a writer putting items at a steady
rate with the wall-clock time in the item; the receiver takes ``arrival - written`` per
change. Reported as p50/p90/p99 against the target ``idle/2 + 100 ms``.

Prints one table and writes JSON to ``bench/results/sinks-webhook-<UTC timestamp>.json``.
Measurements, not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import multiprocessing
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SECRET = "whsec_" + base64.b64encode(b"bench-secret-key-0123456789abcd").decode()
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))
RESULTS_DIR = Path(__file__).resolve().parent / "results"


# --- the receiver (own process) --------------------------------------------------------------


class _Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.bad_signatures = 0
        self.order_violations = 0
        self.last: dict[str, int] = {}
        self.latencies: list[float] = []


_HEADERS = re.compile(
    rb"\r\n(content-length|webhook-id|webhook-timestamp|webhook-signature)[ \t]*:[ \t]*([^\r]*)",
    re.IGNORECASE,
)


class _Key(msgspec.Struct):
    pk: str


class _Image(msgspec.Struct):
    written: float | None = None


class _Message(msgspec.Struct):
    """The fields of a native message the receiver checks (the rest is skipped unparsed)."""

    key: _Key
    sequence_number: str
    new: _Image | None = None


_ONE = msgspec.json.Decoder(_Message)
_MANY = msgspec.json.Decoder(list[_Message])


class _Server(asyncio.Protocol):
    stats = _Stats()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            headers = {name.lower(): value for name, value in _HEADERS.findall(head)}
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            self.transport.write(self.answer(head, headers, body))

    def answer(self, head: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        stats = self.stats
        if head.startswith(b"GET /stats"):
            payload = orjson.dumps({
                "count": stats.count, "bad_signatures": stats.bad_signatures,
                "order_violations": stats.order_violations, "latencies": stats.latencies,
            })  # fmt: skip
            stats.reset()
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
        now = time.time()
        signed = b"%s.%s.%s" % (
            headers.get(b"webhook-id", b""), headers.get(b"webhook-timestamp", b""), body,
        )  # fmt: skip
        expected = b"v1," + base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest())
        if expected not in headers.get(b"webhook-signature", b"").split(b" "):
            stats.bad_signatures += 1
        decoded = (_MANY if body[:1] == b"[" else _ONE).decode(body)
        for message in decoded if isinstance(decoded, list) else [decoded]:
            stats.count += 1
            key = message.key.pk
            sequence = int(message.sequence_number)
            if stats.last.get(key, -1) >= sequence:
                stats.order_violations += 1
            stats.last[key] = sequence
            if message.new is not None and message.new.written is not None:
                stats.latencies.append(now - message.new.written)
        return b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


def _serve(port_queue: Any) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Server, "127.0.0.1", 0)
        port_queue.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    _fast_loop()
    asyncio.run(main())


def _fast_loop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def receiver_stats(port: int) -> dict[str, Any]:
    import requests

    return dict(requests.get(f"http://127.0.0.1:{port}/stats", timeout=30).json())


# --- the changes -----------------------------------------------------------------------------


def make_records(count: int, keys: int, start: int = 1) -> list[Any]:
    from shardline.records import StreamRecord

    records = []
    for i in range(count):
        key = f"k{(i * 7919) % keys:05d}"
        image = {"pk": {"S": key}, "n": {"N": str(i)}, "name": {"S": "x" * 120},
                 "tags": {"SS": ["a", "b"]}, "price": {"N": "12.50"}}  # fmt: skip
        raw = {
            "eventID": f"{i:032x}", "eventName": "MODIFY", "awsRegion": "us-east-1",
            "dynamodb": {"Keys": {"pk": {"S": key}}, "NewImage": image, "OldImage": image,
                         "SequenceNumber": str(start + i).zfill(21), "SizeBytes": 300,
                         "ApproximateCreationDateTime": 1767225600,
                         "StreamViewType": "NEW_AND_OLD_IMAGES"},
        }  # fmt: skip
        records.append(StreamRecord(raw, "shardId-bench"))
    return records


# --- variants --------------------------------------------------------------------------------


def run_requests(url: str, records: list[Any], session: bool) -> dict[str, Any]:
    """One signed POST per change with requests, sequentially (per-key order by construction)."""
    import requests

    from shardline.sinks.formats import MessageFormat, Source, encode

    source = Source("Orders", "arn:aws:dynamodb:us-east-1:1:table/Orders/stream/x", ("pk",))
    client: Any = requests.Session() if session else requests
    started, cpu = time.perf_counter(), time.process_time()
    for record in records:
        body = encode(record, MessageFormat(), source)
        stamp = str(int(time.time()))
        signed = f"{record.event_id}.{stamp}.".encode() + body
        signature = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
        headers = {"content-type": "application/json", "webhook-id": record.event_id,
                   "webhook-timestamp": stamp, "webhook-signature": f"v1,{signature}"}  # fmt: skip
        if not session:
            headers["connection"] = "close"
        client.post(url, data=body, headers=headers, timeout=10).raise_for_status()
    return _figures(len(records), started, cpu)


async def _run_shardline(url: str, records: list[Any], batch: int, options: str) -> dict[str, Any]:
    from shardline.sinks.base import KeyAttribute, SinkContext
    from shardline.sinks.registry import sink_from_url

    sink = sink_from_url(f"{url}?secret_env=BENCH_SECRET{options}")
    arn = "arn:aws:dynamodb:us-east-1:1:table/Orders/stream/x"
    await sink.start(SinkContext("Orders", arn, (KeyAttribute("pk", "S"),), "bench"))
    shard = sink.open_shard("shardId-bench")
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(records), batch):
        await shard.write(records[i : i + batch])
    figures = _figures(len(records), started, cpu)
    await sink.close()
    return figures


def run_shardline(url: str, records: list[Any], batch: int, options: str) -> dict[str, Any]:
    os.environ["BENCH_SECRET"] = SECRET
    _fast_loop()
    return asyncio.run(_run_shardline(url, records, batch, options))


def _figures(count: int, started: float, cpu: float) -> dict[str, Any]:
    wall = time.perf_counter() - started
    used = time.process_time() - cpu
    return {"changes": count, "seconds": round(wall, 3), "per_second": round(count / wall),
            "cpu_seconds": round(used, 3),
            "per_cpu_second": round(count / max(used, 1e-9))}  # fmt: skip


# --- latency ---------------------------------------------------------------------------------


def run_latency(port: int, seconds: float, rate: float, idle: float) -> dict[str, Any]:
    """``shardline run`` on the local stack; items written at ``rate``/s with their time."""
    import boto3

    from shardline.local import LocalStack

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    with LocalStack() as stack:
        client = boto3.client("dynamodb", endpoint_url=stack.endpoint_url, region_name="us-east-1")
        client.create_table(
            TableName="Orders", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )  # fmt: skip
        command = [sys.executable, "-m", "shardline.cli", "run", "--table", "Orders",
                   "--application", "bench", "--endpoint-url", stack.endpoint_url,
                   "--idle-time", str(idle), "--sink",
                   f"http://127.0.0.1:{port}/hook?secret_env=BENCH_SECRET"]  # fmt: skip
        env = {**os.environ, "BENCH_SECRET": SECRET, "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}  # fmt: skip
        worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            time.sleep(5)  # the worker takes its lease
            receiver_stats(port)
            interval, next_at, i = 1.0 / rate, time.time(), 0
            while time.time() - next_at < seconds and i < rate * seconds:
                item = {"pk": {"S": f"k{i % 50}"}, "written": {"N": repr(time.time())}}
                client.put_item(TableName="Orders", Item=item)
                i += 1
                time.sleep(max(0.0, next_at + i * interval - time.time()))
            time.sleep(idle + 2)
            stats = receiver_stats(port)
        finally:
            worker.terminate()
            worker.wait(30)
    latencies: list[float] = sorted(stats["latencies"])

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    return {"written": i, "received": len(latencies), "idle_time": idle,
            "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
            "target_p50_ms": idle * 500 + 100,
            "bad_signatures": stats["bad_signatures"]}  # fmt: skip


# --- main ------------------------------------------------------------------------------------


def _median_row(name: str, found: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median deliveries/s, with the min and max beside it."""
    ordered = sorted(found, key=lambda r: r["per_second"])
    row = dict(ordered[len(ordered) // 2])
    row["min"], row["max"] = ordered[0]["per_second"], ordered[-1]["per_second"]
    row["bad_signatures"] = sum(r["bad_signatures"] for r in found)
    row["order_violations"] = sum(r["order_violations"] for r in found)
    row["runs"] = found
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--baseline-changes", type=int, default=2_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=1_000, help="changes per sink write")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--latency-rate", type=float, default=100.0)
    parser.add_argument("--idle-time", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    ports: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(ports,), daemon=True)
    server.start()
    port = ports.get(timeout=30)
    url = f"http://127.0.0.1:{port}/hook"
    runs: dict[str, list[dict[str, Any]]] = {}

    def measure(name: str, run: Any) -> None:
        figures = run()
        figures.update(receiver_stats(port) | {"name": name})
        figures.pop("latencies", None)
        figures["received"] = figures.pop("count")
        runs.setdefault(name, []).append(figures)
        print(f"{name:44} {figures['per_second']:>8}/s  cpu {figures['per_cpu_second']:>8}/s  "
              f"received {figures['received']:>6}  bad sig {figures['bad_signatures']}  "
              f"order violations {figures['order_violations']}", flush=True)  # fmt: skip

    base = make_records(args.baseline_changes, args.keys)
    records = make_records(args.changes, args.keys)
    for _ in range(args.repeats):  # the variants alternate, so load swings hit them all
        measure("requests, new connection per change", lambda: run_requests(url, base, False))
        measure("requests.Session", lambda: run_requests(url, base, True))
        measure("shardline webhook, 1 change/request",
                lambda: run_shardline(url, records, args.batch, "&concurrency=64"))  # fmt: skip
        measure("shardline webhook, batch=10",
                lambda: run_shardline(url, records, args.batch,
                                      "&batch=10&concurrency=32"))  # fmt: skip
    rows = [_median_row(name, found) for name, found in runs.items()]
    latency = None
    if args.latency_seconds > 0:
        latency = run_latency(port, args.latency_seconds, args.latency_rate, args.idle_time)
        print(f"latency write -> receiver: p50 {latency['p50_ms']} ms, p90 {latency['p90_ms']} "
              f"ms, p99 {latency['p99_ms']} ms (target p50 <= {latency['target_p50_ms']} ms; "
              f"{latency['received']}/{latency['written']} received)")  # fmt: skip
    server.terminate()
    session = next(r for r in rows if r["name"] == "requests.Session")["per_second"]
    for row in rows:
        row["vs_session"] = round(row["per_second"] / session, 1)
    report = {"name": "sinks-webhook", "at": datetime.now(UTC).isoformat(), "args": vars(args),
              "cpus": os.cpu_count(), "rows": rows, "latency": latency}  # fmt: skip
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"sinks-webhook-{stamp}.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"median of {args.repeats} (min..max deliveries/s):")
    for r in rows:
        print(f"  {r['name']:44} {r['per_second']:>8}/s ({r['min']}..{r['max']})  cpu "
              f"{r['per_cpu_second']:>8}/s  x Session {r['vs_session']}")  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
