"""Sinks: PostgreSQL -- changes per second into a local PostgreSQL, shardline vs by hand.

``make bench-sinks`` (or ``.venv/bin/python bench/sinks_postgres.py``). The benchmark starts
its own PostgreSQL cluster (``tests/postgres/server.py``; as root it runs the server as the
unprivileged user ``shardline-pg``) and replays the same GetRecords pages into it twice:

* **baseline**, the consumer a user writes by hand: each page's bytes parsed the way boto3
  parses them (botocore's JSON parser with the GetRecords output shape, then boto3's
  ``TypeDeserializer`` on the key and the new image), the item written as JSON
  (``json.dumps``), then one ``INSERT ... ON CONFLICT DO UPDATE`` (guarded by the sequence
  number) per record with psycopg 3 (sync), one commit per page;
* **shardline**: the same bytes parsed as the consumer parses them
  (``decode_records_answer``, one ``StreamRecord`` per record), then
  ``PostgresSink.write_changes`` (state mode: COPY into the staging table, one guarded merge,
  one transaction) once per page, on asyncio (uvloop when installed, as ``shardline run``).

Pages: ``--changes`` NEW_AND_OLD_IMAGES MODIFY records (``pages.make_record``: ~1 KB items,
every attribute type) over ``--keys`` keys, ``--page`` records a page, sequence numbers
increasing. Change ``i`` touches key ``i * 7919 % keys``, so a page never holds a key twice
(shardline's last-change-per-key has nothing to drop) and every key is written
``changes / keys`` times. Each run starts on a new, empty database. The clock covers parsing
and writing only; building the page bytes is outside it.

Each variant runs in its own fresh process (``--worker``), the variants alternate, and every
run is checked afterwards: one row per key, each holding its key's last change. The figure
is changes per second over the whole replay (median of ``--repeats``; min..max shown),
peak RSS is the worker process's own (``ru_maxrss``). ``--profile FILE`` runs the shardline
worker once under cProfile and prints where the time goes.

Prints one table and writes JSON to ``bench/results/sinks-postgres-<UTC timestamp>.json``.
These are measurements, not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import gc
import json
import os
import pstats
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(ROOT))

import orjson  # noqa: E402
import pages  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"
SEQUENCE_BASE = 10**20
SEQUENCE_STEP = 10
KEY_STRIDE = 7919  # a prime: i * KEY_STRIDE % keys visits every key once per `keys` changes
TEMPLATES = 500
SHARD_ID = "shardId-00000001700000000000-00000001"
TABLE = "orders"
_PK = b"@@PK@@"
_SEQ = b"@@SEQ@@"
VARIANTS = {
    "baseline": "baseline: botocore parser + TypeDeserializer, INSERT .. ON CONFLICT per record",
    "shardline": "shardline: StreamRecord + PostgresSink.write_changes (COPY + guarded merge)",
}
TARGET_RATIO = 10.0
TARGET_RATE = 20_000.0


# --- the pages -------------------------------------------------------------------------------


class PageMaker:
    """GetRecords answer bodies spliced from ``TEMPLATES`` pre-encoded records."""

    def __init__(self, changes: int, keys: int, per_page: int, seed: int) -> None:
        import random

        if keys % KEY_STRIDE == 0:
            raise ValueError(f"--keys must not be a multiple of {KEY_STRIDE}")
        self.changes, self.keys, self.per_page = changes, keys, per_page
        rng = random.Random(seed)
        self.templates: list[list[bytes]] = []
        for index in range(TEMPLATES):
            record = pages.make_record(rng, index)
            data = record["dynamodb"]
            for image in (data["Keys"], data["NewImage"], data["OldImage"]):
                image["pk"] = {"S": _PK.decode()}
            data["SequenceNumber"] = _SEQ.decode()
            self.templates.append(re.split(b"(" + _PK + b"|" + _SEQ + b")", orjson.dumps(record)))

    @staticmethod
    def key(index: int) -> str:
        return f"customer#{index:08d}"

    def key_of(self, change: int) -> int:
        return change * KEY_STRIDE % self.keys

    def record(self, change: int) -> bytes:
        pk = self.key(self.key_of(change)).encode()
        seq = str(SEQUENCE_BASE + change * SEQUENCE_STEP).encode()
        parts = self.templates[change % TEMPLATES]
        return b"".join(pk if p == _PK else seq if p == _SEQ else p for p in parts)

    def pages(self) -> Iterator[tuple[bytes, int]]:
        """(body, records) for every page, in order."""
        for first in range(0, self.changes, self.per_page):
            last = min(self.changes, first + self.per_page)
            records = b",".join(self.record(i) for i in range(first, last))
            following = f"{SHARD_ID}|{last}".encode()
            yield (
                b'{"Records":[' + records + b'],"NextShardIterator":"' + following + b'"}',
                last - first,
            )

    def last_sequence(self, key: int) -> int:
        """The sequence number of ``key``'s last change."""
        return max(
            SEQUENCE_BASE + i * SEQUENCE_STEP
            for i in range(max(0, self.changes - self.keys), self.changes)
            if self.key_of(i) == key
        )


# --- the workers (each run in a fresh process) -----------------------------------------------


def _json_default(value: Any) -> Any:
    """What a hand-written consumer adds to ``json.dumps`` for boto3's values."""
    from boto3.dynamodb.types import Binary

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return base64.b64encode(value.value).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted(value, key=lambda v: v.value if isinstance(v, Binary) else v)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_BASELINE_TABLE = f"""
CREATE TABLE {TABLE} (
    pk text NOT NULL, sk numeric NOT NULL, item jsonb NOT NULL, seq numeric(40) NOT NULL,
    event_name text NOT NULL, changed_at timestamptz, PRIMARY KEY (pk, sk)
)"""
_BASELINE_UPSERT = f"""
INSERT INTO {TABLE} AS t (pk, sk, item, seq, event_name, changed_at)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (pk, sk) DO UPDATE
SET item = EXCLUDED.item, seq = EXCLUDED.seq, event_name = EXCLUDED.event_name,
    changed_at = EXCLUDED.changed_at
WHERE t.seq < EXCLUDED.seq"""
_BASELINE_DELETE = f"DELETE FROM {TABLE} WHERE pk = %s AND sk = %s AND seq < %s"


def run_baseline(maker: PageMaker, dsn: str) -> tuple[float, int]:
    """The consumer written by hand; returns (seconds parsing and writing, changes)."""
    import psycopg
    from decode import _baseline_parts

    parse, deserializer = _baseline_parts()
    deserialize = deserializer.deserialize
    seconds, changes = 0.0, 0
    with psycopg.connect(dsn) as conn:
        conn.execute(_BASELINE_TABLE)
        conn.commit()
        for body, _ in maker.pages():
            start, cpu = time.perf_counter(), time.process_time()
            answer = parse(body)
            with conn.cursor() as cursor:
                for record in answer["Records"]:
                    data = record["dynamodb"]
                    keys = {name: deserialize(av) for name, av in data["Keys"].items()}
                    seq = int(data["SequenceNumber"])
                    if record["eventName"] == "REMOVE":
                        cursor.execute(_BASELINE_DELETE, (keys["pk"], keys["sk"], seq))
                        continue
                    item = {name: deserialize(av) for name, av in data["NewImage"].items()}
                    document = json.dumps(item, default=_json_default)
                    cursor.execute(
                        _BASELINE_UPSERT,
                        (
                            keys["pk"],
                            keys["sk"],
                            document,
                            seq,
                            record["eventName"],
                            data.get("ApproximateCreationDateTime"),
                        ),
                    )
            conn.commit()
            seconds += time.perf_counter() - start
            CPU["cpu_s"] += time.process_time() - cpu
            changes += len(answer["Records"])
            del answer
    return seconds, changes


def run_shardline(maker: PageMaker, dsn: str, profile: str | None = None) -> tuple[float, int]:
    """StreamRecords over the wire records, one ``write_changes`` a page, on asyncio."""
    from shardline.event_loop import loop_factory

    with asyncio.Runner(loop_factory=loop_factory("auto")) as runner:
        return runner.run(_shardline(maker, dsn, profile))


async def _shardline(maker: PageMaker, dsn: str, profile: str | None) -> tuple[float, int]:
    from shardline.records import StreamRecord
    from shardline.sinks.base import KeyAttribute, SinkContext
    from shardline.sinks.postgres import PostgresSink
    from shardline.streams.wire import decode_records_answer

    sink = PostgresSink(dsn, table=TABLE, pool_size=1)
    context = SinkContext(
        table="Orders",
        stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/bench",
        key_schema=(KeyAttribute("pk", "S"), KeyAttribute("sk", "N", "RANGE")),
        application="bench-sinks",
        region="us-east-1",
        stream_view_type="NEW_AND_OLD_IMAGES",
    )
    await sink.start(context)
    phases = _time_row_building(sink)
    profiler = cProfile.Profile() if profile else None
    seconds, changes = 0.0, 0
    try:
        for body, _ in maker.pages():
            start, cpu = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            wires, _ = decode_records_answer(body)
            records = [StreamRecord(wire, SHARD_ID) for wire in wires]
            parsed = time.perf_counter()
            await sink.write_changes(records)
            if profiler is not None:
                profiler.disable()
            end = time.perf_counter()
            seconds += end - start
            CPU["cpu_s"] += time.process_time() - cpu
            phases["parse_s"] += parsed - start
            phases["write_changes_s"] += end - parsed
            changes += len(records)
            del wires, records
    finally:
        await sink.close()
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    PHASES.update(phases)
    return seconds, changes


#: The worker's CPU time inside the clock (parsing and writing; building pages excluded).
CPU = {"cpu_s": 0.0}
#: Where the shardline worker's time went: parsing, building rows, the rest of write_changes.
PHASES: dict[str, float] = {}


def _time_row_building(sink: Any) -> dict[str, float]:
    """Time the sink's row building inside ``write_changes`` (wraps its RowBuilder.rows)."""
    phases = {"parse_s": 0.0, "rows_s": 0.0, "write_changes_s": 0.0}
    builder = sink._rows
    build = builder.rows

    def timed(records: Any) -> Any:
        start = time.perf_counter()
        try:
            return build(records)
        finally:
            phases["rows_s"] += time.perf_counter() - start

    builder.rows = timed
    return phases


def worker_main(args: argparse.Namespace) -> int:
    """One variant, one replay; prints one JSON line."""
    maker = PageMaker(args.changes, args.keys, args.page, args.seed)
    gc.collect()
    rss_before = _rss_mb()
    if args.worker == "baseline":
        seconds, changes = run_baseline(maker, args.dsn)
    else:
        seconds, changes = run_shardline(maker, args.dsn, args.profile)
    result = {
        "variant": args.worker,
        "seconds": seconds,
        "changes": changes,
        "changes_per_s": changes / seconds,
        "cpu_s": CPU["cpu_s"],
        "rss_start_mb": rss_before,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if PHASES:
        result["us_per_change"] = {
            "parse": PHASES["parse_s"] / changes * 1e6,
            "build_rows": PHASES["rows_s"] / changes * 1e6,
            "copy_merge_commit": (PHASES["write_changes_s"] - PHASES["rows_s"]) / changes * 1e6,
        }
    print(json.dumps(result), flush=True)
    return 0


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- the driver ------------------------------------------------------------------------------


def run_worker(
    args: argparse.Namespace, variant: str, dsn: str, profile: str | None = None
) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        variant,
        "--dsn",
        dsn,
        "--changes",
        str(args.changes),
        "--keys",
        str(args.keys),
        "--page",
        str(args.page),
        "--seed",
        str(args.seed),
    ]
    if profile:
        argv += ["--profile", profile]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} worker failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def check_table(dsn: str, variant: str, maker: PageMaker) -> dict[str, Any]:
    """One row per key, each with its key's last change; raises when not."""
    import psycopg

    seq = "_seq" if variant == "shardline" else "seq"
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT pk, {seq} FROM {TABLE}").fetchall()
    expected = min(maker.changes, maker.keys)
    if len(rows) != expected:
        raise RuntimeError(f"{variant}: {len(rows)} rows, expected {expected}")
    for pk, got in rows[:: max(1, len(rows) // 200)]:  # a sample: the last change of each
        want = maker.last_sequence(int(pk.removeprefix("customer#")))
        if int(got) != want:
            raise RuntimeError(f"{variant}: {pk} holds sequence {got}, expected {want}")
    return {"rows": len(rows), "checked": "one row per key; sampled rows hold their last change"}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["changes_per_s"] for r in runs]
    return {
        "changes_per_s": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "seconds_median": statistics.median(r["seconds"] for r in runs),
        "cpu_share": statistics.median(r["cpu_s"] / r["seconds"] for r in runs),
        "rss_peak_mb": max(r["rss_peak_mb"] for r in runs),
        "us_per_change": {
            phase: statistics.median(r["us_per_change"][phase] for r in runs)
            for phase in runs[0].get("us_per_change", {})
        },
        "runs": runs,
    }


def profile_summary(path: str, top: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(path)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    entries = stats.stats  # type: ignore[attr-defined]
    for (file, line, name), (_, calls, tottime, cumtime, _) in sorted(
        entries.items(), key=lambda kv: kv[1][2], reverse=True
    )[:top]:
        where = f"{Path(file).name}:{line}" if line else file
        rows.append(
            {
                "function": f"{name} ({where})",
                "calls": calls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
                "share_of_total": tottime / total if total else 0.0,
            }
        )
    return rows


def driver_main(args: argparse.Namespace) -> int:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from tests.postgres.server import PostgresServer, unique_database_name

    os.environ.pop("PGPASSWORD", None)
    now = datetime.now(UTC)
    started = time.perf_counter()
    maker = PageMaker(args.changes, args.keys, args.page, args.seed)
    first_body, first_records = next(maker.pages())
    report: dict[str, Any] = {
        "name": "sinks-postgres",
        "created_utc": now.isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "settings": {
            "changes": args.changes,
            "keys": args.keys,
            "records_per_page": args.page,
            "repeats": args.repeats,
            "seed": args.seed,
            "page_bytes": len(first_body),
            "record_bytes": len(first_body) // first_records,
        },
        "machine": {"cpu_count": os.cpu_count(), "python": sys.version.split()[0]},
        "load_average": {"before": list(os.getloadavg())},
    }
    console = Console(width=170)
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    with PostgresServer() as server:
        report["postgres"] = _server_version(server.admin_dsn)
        for repeat in range(args.repeats):
            order = list(VARIANTS) if repeat % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                name = unique_database_name(f"bench_{variant}")
                dsn = server.create_database(name)
                try:
                    console.print(f"[dim]run {repeat + 1}/{args.repeats}: {variant} ...[/dim]")
                    result = run_worker(args, variant, dsn)
                    result["check"] = check_table(dsn, variant, maker)
                    results[variant].append(result)
                    console.print(
                        f"[dim]  {result['changes_per_s']:,.0f} changes/s, "
                        f"{result['seconds']:.1f} s, peak RSS {result['rss_peak_mb']:.0f} MB[/dim]"
                    )
                finally:
                    server.drop_database(name)
        if args.profile:
            name = unique_database_name("bench_profile")
            dsn = server.create_database(name)
            try:
                console.print("[dim]profiling the shardline worker ...[/dim]")
                profiled = run_worker(args, "shardline", dsn, profile=args.profile)
                report["profile"] = {
                    "file": args.profile,
                    "changes_per_s_under_profiler": profiled["changes_per_s"],
                    "top_by_own_time": profile_summary(args.profile, args.profile_top),
                }
            finally:
                server.drop_database(name)
    variants = {v: {"label": VARIANTS[v], **summarize(results[v])} for v in VARIANTS}
    base = variants["baseline"]["changes_per_s"]
    fast = variants["shardline"]["changes_per_s"]
    report["variants"] = variants
    report["ratio"] = fast / base
    report["targets"] = {
        "ratio": TARGET_RATIO,
        "changes_per_s": TARGET_RATE,
        "met_ratio": fast / base >= TARGET_RATIO,
        "met_rate": fast >= TARGET_RATE,
    }
    report["load_average"]["after"] = list(os.getloadavg())
    report["total_seconds"] = time.perf_counter() - started
    path = write_json(report, now.strftime("%Y%m%dT%H%M%SZ"))
    render(report, console, Table, box)
    console.print(f"JSON: {path.relative_to(ROOT)}")
    return 0


def _server_version(admin_dsn: str) -> str:
    import psycopg

    with psycopg.connect(admin_dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def write_json(report: dict[str, Any], stamp: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{report['name']}-{stamp}.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    return path


def render(report: dict[str, Any], console: Any, table_type: Any, box: Any) -> None:
    s = report["settings"]
    load = report["load_average"]
    console.print(
        f"shardline sinks bench {report['created_utc']} | python {report['machine']['python']} "
        f"| PostgreSQL {report['postgres']} | {report['machine']['cpu_count']} CPUs (shared with "
        f"the server) | load average {load['before'][0]:.2f} before, {load['after'][0]:.2f} after"
    )
    console.print(
        f"{s['changes']:,} MODIFY changes (NEW_AND_OLD_IMAGES) over {s['keys']:,} keys, "
        f"{s['records_per_page']} a page ({s['page_bytes'] / 1e6:.1f} MB, "
        f"{s['record_bytes']:,} B a record), N={s['repeats']} per variant"
    )
    table = table_type(box=box.SIMPLE_HEAD, show_header=True, header_style="bold")
    for name, justify in (
        ("variant", "left"),
        ("changes/s (median)", "right"),
        ("min .. max", "right"),
        ("python CPU", "right"),
        ("peak RSS", "right"),
        ("vs baseline", "right"),
        ("target", "left"),
        ("met", "left"),
    ):
        table.add_column(name, justify=justify)
    base = report["variants"]["baseline"]["changes_per_s"]
    targets = report["targets"]
    for key, v in report["variants"].items():
        target, met = "", ""
        if key == "shardline":
            target = f">= {TARGET_RATIO:.0f}x, >= {TARGET_RATE:,.0f}/s"
            ok = targets["met_ratio"] and targets["met_rate"]
            met = "[green]yes[/green]" if ok else "[red]NO[/red]"
        table.add_row(
            v["label"],
            f"{v['changes_per_s']:,.0f}",
            f"{v['min']:,.0f} .. {v['max']:,.0f}",
            f"{v['cpu_share']:.0%}",
            f"{v['rss_peak_mb']:.0f} MB",
            f"{v['changes_per_s'] / base:.1f}x",
            target,
            met,
        )
    console.print(table)
    phases = report["variants"]["shardline"]["us_per_change"]
    if phases:
        console.print(
            "shardline per change (medians): "
            + ", ".join(f"{name.replace('_', ' ')} {us:.1f} us" for name, us in phases.items())
            + " (build rows and the rest of write_changes timed inside it)"
        )
    profile = report.get("profile")
    if profile:
        console.print(
            f"profile of the shardline worker ({profile['changes_per_s_under_profiler']:,.0f} "
            f"changes/s under cProfile), by own time:"
        )
        for row in profile["top_by_own_time"]:
            console.print(
                f"  {row['share_of_total']:6.1%}  {row['tottime_s']:7.3f} s  "
                f"{row['calls']:>9,}  {row['function']}"
            )
    console.print(
        "python CPU = the worker's CPU time / wall time, both inside the clock (below "
        f"100%: waiting for PostgreSQL or for a core). {report['total_seconds']:.0f} s."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/sinks_postgres.py",
        description="PostgreSQL sink vs a hand-written psycopg consumer (table + JSON)",
    )
    parser.add_argument("--quick", action="store_true", help="20,000 changes, 1 repeat")
    parser.add_argument("--changes", type=int, help="changes replayed (default 100,000)")
    parser.add_argument("--keys", type=int, help="distinct keys (default 20,000)")
    parser.add_argument("--page", type=int, default=1000, help="records a page (default 1000)")
    parser.add_argument("--repeats", type=int, help="runs per variant (default 3)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--profile", metavar="FILE", help="also profile one shardline run")
    parser.add_argument("--profile-top", type=int, default=25, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.changes = args.changes or (20_000 if args.quick else 100_000)
    args.keys = args.keys or (4_000 if args.quick else 20_000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    for name in ("changes", "keys", "page", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    return driver_main(args)


if __name__ == "__main__":
    sys.exit(main())
