"""shardline read-path benchmarks: ``make bench`` (or ``.venv/bin/python bench/run.py``).

1. Page decode (pure CPU): one GetRecords page of 1000 NEW_AND_OLD_IMAGES records,
   botocore's parser + boto3's TypeDeserializer against orjson + StreamRecord.
2. Read pipeline (HTTP): drain a stream from the embedded local stack with boto3 and
   with shardline's StreamsClient.

Prints one table and writes JSON to ``bench/results/<name>-<UTC timestamp>.json`` and
``bench/results/latest.json``. Speed is reported as ratios against the baseline measured
in the same run; these are measurements, not tests, and nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
_PACKAGES = ("shardline", "botocore", "boto3", "orjson", "aiohttp", "moto")
_SERVER_NOTE = (
    "the local stack serves from a thread of this process: its HTTP and paging cost "
    "is included in both readers' figures"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description="shardline read-path benchmarks (table + JSON)"
    )
    parser.add_argument("--quick", action="store_true", help="few runs, small volume (< 30 s)")
    parser.add_argument("--runs", type=int, help="decode runs per variant (default 15; quick 3)")
    parser.add_argument(
        "--http-runs", type=int, help="timed drains per reader (default 5; quick 2)"
    )
    parser.add_argument(
        "--items", type=int, help="items written for the HTTP pipeline (default 5000; quick 1000)"
    )
    parser.add_argument(
        "--records", type=int, default=1000, help="records per decoded page (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=20240601, help="seed for generated data")
    parser.add_argument("--name", default="reads", help="results file prefix (default reads)")
    parser.add_argument("--skip-http", action="store_true", help="run only the decode benchmark")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU core")
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="disable the cyclic GC while a decode sample runs (to see its share)",
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or (3 if args.quick else 15)
    args.http_runs = args.http_runs or (2 if args.quick else 5)
    args.items = args.items or (1000 if args.quick else 5000)
    for name in ("runs", "http_runs", "items", "records"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def pin_to_one_core(enabled: bool) -> dict[str, Any]:
    """Pin this process (and the threads it starts later) to one allowed CPU core."""
    if not enabled:
        return {"pinned": False, "reason": "--no-pin"}
    if not hasattr(os, "sched_setaffinity"):
        return {"pinned": False, "reason": "os.sched_setaffinity is not available here"}
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1]  # the last one: CPU 0 tends to take more of the interrupts
    os.sched_setaffinity(0, {cpu})
    return {"pinned": True, "cpu": cpu, "allowed_before": allowed}


def use_dummy_credentials() -> None:
    """The local stack takes any credentials; never let a real profile or key be picked up."""
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in _PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


# --- the benchmarks ------------------------------------------------------------------------


def decode_section(args: argparse.Namespace) -> dict[str, Any]:
    import decode
    import pages

    body = pages.get_records_body(args.seed, args.records)
    # Nothing parsed may stay alive while timing: a big live heap slows every full GC.
    samples = decode.run_decode(body, args.runs, collector=not args.no_gc)
    variants = {
        key: {"label": label, **decode.summarize(samples[key], args.records)}
        for key, (label, _) in decode.VARIANTS.items()
    }
    baseline = variants["baseline"]["median_ms"]
    shardline_b = variants["shardline_b"]["median_ms"]
    return {
        "page": page_stats(body, args.records),
        "runs": args.runs,
        "cyclic_gc_during_samples": not args.no_gc,
        "same_decoding": decode.check_same_decoding(body),
        "variants": variants,
        "ratio_shardline_b_over_baseline": shardline_b / baseline,
        "speedup": baseline / shardline_b,
    }


def page_stats(body: bytes, records: int) -> dict[str, Any]:
    import pages

    images = [r["dynamodb"]["NewImage"] for r in orjson.loads(body)["Records"]]
    return {
        "records": records,
        "event": "MODIFY (NewImage and OldImage)",
        "body_bytes": len(body),
        "avg_item_size_bytes": statistics.mean(map(pages.dynamodb_item_size, images)),
        "avg_new_image_json_bytes": statistics.mean(len(orjson.dumps(i)) for i in images),
    }


def pipeline_section(args: argparse.Namespace) -> dict[str, Any]:
    import pipeline

    result = pipeline.run_pipeline(args.items, args.http_runs, args.seed)
    readers = {
        "boto3": _drains("boto3 get_records + TypeDeserializer", result.boto3),
        "shardline": _drains("shardline StreamsClient + .new_image", result.shardline),
    }
    boto3_s = readers["boto3"]["median_s"]
    shardline_s = readers["shardline"]["median_s"]
    return {
        "items": result.items,
        "shards": result.shards,
        "write_seconds": result.write_seconds,
        "runs": args.http_runs,
        "note": _SERVER_NOTE,
        "readers": readers,
        "ratio_shardline_over_baseline": shardline_s / boto3_s,
        "speedup": boto3_s / shardline_s,
    }


def _drains(label: str, drains: list[Any]) -> dict[str, Any]:
    seconds = [d.seconds for d in drains]
    median = statistics.median(seconds)
    return {
        "label": label,
        "median_s": median,
        "min_s": min(seconds),
        "max_s": max(seconds),
        "records": drains[0].records,
        "pages": drains[0].pages,
        "records_per_s": drains[0].records / median,
        "samples_s": [round(s, 4) for s in seconds],
    }


# --- output ----------------------------------------------------------------------------------


def render(report: dict[str, Any], console: Console) -> None:
    pin = report["pinning"]
    where = f"pinned to CPU {pin['cpu']}" if pin["pinned"] else f"not pinned ({pin['reason']})"
    info = report["machine"]
    console.print(
        f"shardline bench {report['created_utc']} | python {info['python']} | "
        f"{info['platform']} | {info['cpu_count']} CPUs | {where}"
    )
    table = Table(box=box.SIMPLE_HEAD, show_header=True, header_style="bold")
    table.add_column("variant")
    table.add_column("median", justify="right")
    table.add_column("min .. max", justify="right")
    table.add_column("records/s", justify="right")
    table.add_column("x baseline", justify="right")

    decode = report.get("decode")
    if decode is not None:
        page = decode["page"]
        gc_state = "" if decode["cyclic_gc_during_samples"] else ", GC off"
        table.add_row(f"[bold]1. page decode[/bold] (CPU only, N={decode['runs']}{gc_state})")
        base = decode["variants"]["baseline"]["median_ms"]
        for variant in decode["variants"].values():
            table.add_row(
                f"  {variant['label']}",
                f"{variant['median_ms']:.1f} ms",
                f"{variant['min_ms']:.1f} .. {variant['max_ms']:.1f}",
                f"{variant['records_per_s']:,.0f}",
                f"{variant['median_ms'] / base:.3f}",
            )

    http = report.get("pipeline")
    if http is not None:
        table.add_row()
        table.add_row(f"[bold]2. HTTP read pipeline[/bold] (N={http['runs']})")
        base = http["readers"]["boto3"]["median_s"]
        for reader in http["readers"].values():
            table.add_row(
                f"  {reader['label']} ({reader['pages']} pages)",
                f"{reader['median_s'] * 1e3:.0f} ms",
                f"{reader['min_s'] * 1e3:.0f} .. {reader['max_s'] * 1e3:.0f}",
                f"{reader['records_per_s']:,.0f}",
                f"{reader['median_s'] / base:.3f}",
            )
    console.print(table)

    if decode is not None:
        page = decode["page"]
        same = "equal" if decode["same_decoding"] else "DIFFERENT (check the decoders!)"
        console.print(
            f"decode: one page of {page['records']} MODIFY records with both images, "
            f"{page['body_bytes'] / 1e6:.1f} MB; avg item {page['avg_item_size_bytes']:.0f} B "
            f"({page['avg_new_image_json_bytes']:.0f} B as DynamoDB JSON). NewImages from "
            f"both decoders are {same}.\n"
            f"        shardline(b)/baseline = {decode['ratio_shardline_b_over_baseline']:.3f}"
            f" ({decode['speedup']:.1f}x faster)."
        )
    if http is not None:
        console.print(
            f"http:   drain {http['items']} INSERT records (NewImage only) from "
            f"{http['shards']} shards (a split); timed per full drain.\n"
            f"        shardline/boto3 = {http['ratio_shardline_over_baseline']:.3f}"
            f" ({http['speedup']:.1f}x faster). Note: {http['note']}."
        )
    console.print(
        "x baseline = time / baseline time in this run (lower is better). "
        f"JSON: {report['files'][0]} (and latest.json)"
    )


def write_json(report: dict[str, Any], stamp: str) -> list[Path]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    paths = [RESULTS_DIR / f"{report['name']}-{stamp}.json", RESULTS_DIR / "latest.json"]
    report["files"] = [str(p.relative_to(BENCH_DIR.parent)) for p in paths]
    data = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    for path in paths:
        path.write_bytes(data)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinning = pin_to_one_core(not args.no_pin)
    use_dummy_credentials()
    random.seed(args.seed)
    now = datetime.now(UTC)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "name": args.name,
        "created_utc": now.isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "settings": {
            "quick": args.quick,
            "runs": args.runs,
            "http_runs": args.http_runs,
            "items": args.items,
            "records_per_page": args.records,
            "seed": args.seed,
            "no_gc": args.no_gc,
        },
        "machine": machine(),
        "pinning": pinning,
        "versions": versions(),
        "git_commit": git_commit(),
    }
    report["decode"] = decode_section(args)
    if not args.skip_http:
        report["pipeline"] = pipeline_section(args)
    report["total_seconds"] = time.perf_counter() - started
    write_json(report, now.strftime("%Y%m%dT%H%M%SZ"))
    render(report, Console(width=max(110, shutil.get_terminal_size().columns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
