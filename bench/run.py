"""shardline benchmarks: ``make bench`` (or ``.venv/bin/python bench/run.py``).

Sections (``--only`` picks some; see bench/README.md):

* ``decode``: one GetRecords page of 1000 NEW_AND_OLD_IMAGES records, CPU only.
* ``drain``: drain a stream from the embedded local stack, boto3 against StreamsClient.
* ``throughput``: records/s on one core through the whole pipeline (replay server).
* ``latency``: end-to-end latency on the local stack at idle 500 ms and 100 ms.
* ``handoff``: SIGTERM / SIGKILL of one of two ``shardline run`` workers.
* ``many``: one worker holding 1000 idle shards: CPU and RSS.
* ``memory``: RSS under a sleeping handler with an endless backlog.
* ``startup``: ``shardline --help`` wall time.

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
SECTIONS = ("decode", "drain", "throughput", "latency", "handoff", "many", "memory", "startup")
_SERVER_NOTE = (
    "the local stack serves from a thread of this process: its HTTP and paging cost "
    "is included in both readers' figures"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description="shardline read-path benchmarks (table + JSON)"
    )
    parser.add_argument("--quick", action="store_true", help="few runs, short windows (< 2 min)")
    parser.add_argument(
        "--only", help=f"comma-separated sections (default all: {','.join(SECTIONS)})"
    )
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
    parser.add_argument("--skip-http", action="store_true", help="skip the local-stack drain")
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
    args.sections = args.only.split(",") if args.only else list(SECTIONS)
    if args.quick and not args.only:
        args.sections.remove("drain")  # the old drain comparison; throughput supersedes it
    if args.skip_http and "drain" in args.sections:
        args.sections.remove("drain")
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
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


def _yes(met: bool | None) -> str:
    if met is None:
        return ""
    return "[green]yes[/green]" if met else "[red]NO[/red]"


def _many_row(label: str, many: dict[str, Any], target: str, met: str) -> tuple[str, ...]:
    return (
        label,
        f"{many['cpu_share']:.0%} / {many['rss_peak_mb']:.0f} MB",
        f"{many['get_records_per_s']:,.0f} GetRecords/s; lost {many['leases_lost']:.0f}",
        "",
        target,
        met,
    )


def _rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """(what, figure, spread/detail, vs baseline, target, met) per line of the table."""
    rows: list[tuple[str, ...]] = []
    decode = report.get("decode")
    if decode is not None:
        rows.append((f"[bold]page decode[/bold] (CPU only, 1 page, N={decode['runs']})",))
        base = decode["variants"]["baseline"]["median_ms"]
        for v in decode["variants"].values():
            rows.append(
                (
                    f"  {v['label']}",
                    f"{v['median_ms']:.1f} ms ({v['records_per_s']:,.0f} rec/s)",
                    f"{v['min_ms']:.1f} .. {v['max_ms']:.1f} ms",
                    f"{base / v['median_ms']:.1f}x",
                )
            )
    http = report.get("pipeline")
    if http is not None:
        rows.append((f"[bold]local-stack drain[/bold] ({http['items']} items, N={http['runs']})",))
        base = http["readers"]["boto3"]["median_s"]
        for r in http["readers"].values():
            rows.append(
                (
                    f"  {r['label']}",
                    f"{r['median_s'] * 1e3:.0f} ms ({r['records_per_s']:,.0f} rec/s)",
                    f"{r['min_s'] * 1e3:.0f} .. {r['max_s'] * 1e3:.0f} ms",
                    f"{base / r['median_s']:.1f}x",
                )
            )
    tput = report.get("throughput")
    if tput is not None:
        rows.append(
            (
                f"[bold]1. throughput, one core[/bold] ({tput['shards']} shards, "
                f"{tput['window_s']:.0f} s windows, N={tput['repeats']})",
            )
        )
        targets = tput["targets"]
        for key, v in tput["variants"].items():
            target, met = ("", None)
            if key == "shardline_b":
                target, met = ">= 8x, >= 30,000/s", targets["met_ratio"] and targets["met_rate"]
            rows.append(
                (
                    f"  {v['label']}",
                    f"{v['records_per_s']:,.0f} rec/s",
                    f"{v['min']:,.0f} .. {v['max']:,.0f}; cpu {v['cpu_share']:.0%}",
                    f"{v['x_baseline']:.1f}x",
                    target,
                    _yes(met),
                )
            )
    latency = report.get("latency")
    if latency is not None:
        rows.append((f"[bold]2. end-to-end latency[/bold] ({latency['duration_s']:.0f} s each)",))
        for run in latency["runs"]:
            t = run["targets"]
            rows.append(
                (
                    f"  idle {run['idle_s'] * 1e3:.0f} ms: p50 / p95 / p99",
                    f"{run['p50_ms']:.0f} / {run['p95_ms']:.0f} / {run['p99_ms']:.0f} ms",
                    f"n={run['stamped_seen']}; busy shard p50 {run['busy_shard_p50_ms']:.0f} ms",
                    "",
                    f"p50 <= {t['p50_ms']:.0f}, p99 <= {t['p99_ms']:.0f}",
                    _yes(t["met"]),
                )
            )
    handoff = report.get("handoff")
    if handoff is not None:
        rows.append((f"[bold]3. handoff[/bold] (2 workers, {handoff['shards']} shards)",))
        for name in ("SIGTERM", "SIGKILL"):
            h = handoff[name]
            trials = [r for r in handoff["trials"] if r["signal"] == name]
            figure = "-" if h["median_s"] is None else f"{h['median_s']:.2f} s (median)"
            rows.append(
                (
                    f"  {name}: until the other worker has every shard",
                    figure,
                    f"max {h['max_s'] or 0:.2f} s; {len(trials)} trial(s), "
                    f"{sum(r['shards_moved'] for r in trials)} shards moved",
                    "",
                    f"<= {h['target_s']:.0f} s",
                    _yes(h["met"]),
                )
            )
    many = report.get("many")
    if many is not None:
        rows.append((f"[bold]4. {many['shards']} idle shards[/bold], one worker",))
        rows.append(
            _many_row(
                "  CPU share of one core / peak RSS",
                many,
                "<= 25%, <= 250 MB",
                _yes(many["targets"]["met"]),
            )
        )
        if "standard_loop" in many:
            rows.append(
                _many_row(
                    "  same on asyncio's standard loop (--event-loop asyncio)",
                    many["standard_loop"],
                    "(information)",
                    "",
                )
            )
    memory = report.get("memory")
    if memory is not None:
        rows.append(
            (
                f"[bold]5. bounded memory[/bold] ({memory['shards']} shards, backlog, "
                f"handler sleeps {memory['handler_sleep_s']:.0f} s)",
            )
        )
        rows.append(
            (
                "  RSS first third / last third / peak",
                f"{memory['rss_first_third_median_mb']:.0f} / "
                f"{memory['rss_last_third_median_mb']:.0f} / {memory['rss_peak_mb']:.0f} MB",
                f"{memory['window_s']:.0f} s, {memory['records_delivered']:,} records",
                "",
                "flat",
                _yes(
                    memory["rss_last_third_median_mb"] <= 1.1 * memory["rss_first_third_median_mb"]
                ),
            )
        )
    startup = report.get("startup")
    if startup is not None:
        rows.append((f"[bold]6. start-up[/bold] (N={startup['runs']})",))
        rows.append(
            (
                "  shardline --help",
                f"{startup['help_median_ms']:.0f} ms",
                f"{startup['help_min_ms']:.0f} .. {startup['help_max_ms']:.0f} ms; bare "
                f"python {startup['python_bare_median_ms']:.0f} ms",
                "",
                "<= 300 ms",
                _yes(startup["targets"]["met"]),
            )
        )
    return rows


def render(report: dict[str, Any], console: Console) -> None:
    pin = report["pinning"]
    where = f"CPU {pin['cpu']}" if pin["pinned"] else f"not pinned ({pin['reason']})"
    info = report["machine"]
    load = report["load_average"]
    console.print(
        f"shardline bench {report['created_utc']} | python {info['python']} | "
        f"{info['platform']} | {info['cpu_count']} CPUs | consumer {where} | load average "
        f"{load['before'][0]:.2f} before, {load['after'][0]:.2f} after"
    )
    table = Table(box=box.SIMPLE_HEAD, show_header=True, header_style="bold")
    for name, justify in (
        ("benchmark", "left"),
        ("result", "right"),
        ("spread / detail", "right"),
        ("vs baseline", "right"),
        ("target", "left"),
        ("met", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in _rows(report):
        table.add_row(*row)
    console.print(table)
    decode = report.get("decode")
    if decode is not None:
        page = decode["page"]
        same = "equal" if decode["same_decoding"] else "DIFFERENT (check the decoders!)"
        console.print(
            f"decode page: {page['records']} MODIFY records with both images, "
            f"{page['body_bytes'] / 1e6:.1f} MB; avg item {page['avg_item_size_bytes']:.0f} B "
            f"({page['avg_new_image_json_bytes']:.0f} B as DynamoDB JSON); decoders agree: {same}."
        )
    console.print(
        "vs baseline = baseline time / time, or rate / baseline rate, in this run (higher is "
        f"faster). {report['total_seconds']:.0f} s. JSON: {report['files'][0]} (and latest.json)"
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
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
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
            "sections": args.sections,
            "runs": args.runs,
            "http_runs": args.http_runs,
            "items": args.items,
            "records_per_page": args.records,
            "seed": args.seed,
            "no_gc": args.no_gc,
        },
        "machine": machine(),
        "pinning": pinning,
        "load_average": {"before": list(os.getloadavg())},
        "versions": versions(),
        "git_commit": git_commit(),
    }
    console = Console(width=max(175, shutil.get_terminal_size().columns))
    if "decode" in args.sections:
        report["decode"] = decode_section(args)
    if "drain" in args.sections:
        report["pipeline"] = pipeline_section(args)
    if allowed is not None:
        os.sched_setaffinity(0, allowed)  # the other sections pin their own processes
    for name in ("throughput", "latency", "handoff", "many", "memory", "startup"):
        if name in args.sections:
            console.print(f"[dim]running {name} ...[/dim]")
            report[name] = process_section(name, args.quick)
    report["load_average"]["after"] = list(os.getloadavg())
    report["total_seconds"] = time.perf_counter() - started
    write_json(report, now.strftime("%Y%m%dT%H%M%SZ"))
    render(report, console)
    return 0


def process_section(name: str, quick: bool) -> dict[str, Any]:
    """Run one of the multi-process sections (each starts and stops its own servers)."""
    if name == "throughput":
        from throughput import run_throughput

        return run_throughput(quick)
    if name == "latency":
        from latency import run_latency

        return run_latency(quick)
    if name == "handoff":
        from handoff import run_handoff

        return run_handoff(quick)
    import resources

    runner = {
        "many": resources.run_many_shards,
        "memory": resources.run_bounded_memory,
        "startup": resources.run_startup,
    }[name]
    return runner(quick)


if __name__ == "__main__":
    sys.exit(main())
