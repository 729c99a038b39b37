"""Many idle shards (CPU and memory of one worker), bounded memory under a slow handler,
and start-up time of the ``shardline`` command.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import time
from typing import Any

import procs
import replay
from throughput import _wait_for

SHARDLINE = procs.SHARDLINE


def _worker(
    server: procs.Child, stack: procs.Child, cpu: int, application: str, *extra: str
) -> procs.Child:
    args = [
        "shardline", "--streams", f"http://127.0.0.1:{server.port}",
        "--ddb", f"http://127.0.0.1:{stack.port}", "--stream-arn", replay.STREAM_ARN,
        "--application", application, *extra,
    ]  # fmt: skip
    return procs.start(
        [procs.PYTHON, str(procs.BENCH_DIR / "workers.py"), *args], cpu=cpu, wait_ready=False
    )


def run_many_shards(quick: bool, shards: int = 1000) -> dict[str, Any]:
    """:func:`measure_many_shards` as users run it (uvloop when installed), then on
    asyncio's standard loop for comparison (``standard_loop``)."""
    result = measure_many_shards(quick, shards)
    standard = measure_many_shards(quick, shards, ("--event-loop", "asyncio"))
    kept = (
        "cpu_share",
        "rss_peak_mb",
        "get_records_per_s",
        "cpu_ms_per_get_records",
        "leases_lost",
    )
    result["standard_loop"] = {key: standard[key] for key in kept}
    return result


def measure_many_shards(
    quick: bool, shards: int = 1000, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One worker holding ``shards`` idle shards (empty pages): CPU share and RSS."""
    consumer_cpu, server_cpu = procs.cpus()
    window = 6.0 if quick else 30.0
    stack = procs.start_stack(server_cpu)
    server = procs.start_replay(shards, "empty", server_cpu)
    child = _worker(server, stack, consumer_cpu, "many-shards", "--handler", "none", *extra)
    try:
        started = time.monotonic()
        _wait_for(child, lambda s: s.get("held", 0) >= shards, 240)
        all_held_after = time.monotonic() - started
        time.sleep(3.0)  # let every consumer reach its idle polling
        first = child.json_lines()[-1]
        cpu0, t0 = procs.cpu_seconds(child.pid), time.monotonic()
        servers0 = (procs.cpu_seconds(server.pid), procs.cpu_seconds(stack.pid))
        rss: list[int] = []
        while time.monotonic() - t0 < window:
            rss.append(procs.rss_bytes(child.pid))
            time.sleep(0.5)
        cpu1, t1 = procs.cpu_seconds(child.pid), time.monotonic()
        servers = {
            "replay_cpu_share": procs.cpu_seconds(server.pid),
            "stack_cpu_share": procs.cpu_seconds(stack.pid),
        }
        last = child.json_lines()[-1]
    finally:
        child.stop(signal.SIGKILL)
        server.stop()
        stack.stop()
    cpu_share = (cpu1 - cpu0) / (t1 - t0)
    servers["replay_cpu_share"] = (servers["replay_cpu_share"] - servers0[0]) / (t1 - t0)
    servers["stack_cpu_share"] = (servers["stack_cpu_share"] - servers0[1]) / (t1 - t0)
    peak = max(rss)
    calls_per_s = (last["calls"] - first["calls"]) / (last["t"] - first["t"])
    return {
        "shards": shards,
        "window_s": round(t1 - t0, 1),
        "all_leases_held_after_s": round(all_held_after, 1),
        "cpu_share": cpu_share,
        "rss_peak_mb": peak / 2**20,
        "rss_median_mb": statistics.median(rss) / 2**20,
        "get_records_per_s": calls_per_s,
        "cpu_ms_per_get_records": cpu_share * 1e3 / calls_per_s,
        "nominal_get_records_per_s": shards / 0.5,
        "get_records_mean_latency_ms": 1e3
        * (last["rtt_sum"] - first["rtt_sum"])
        / max(1.0, last["calls"] - first["calls"]),
        **servers,
        "leases_held_end": last["held"],
        "leases_lost": last["lost"],
        "renewal_failures": last["renew_failures"],
        "targets": {
            "cpu_share": 0.25,
            "rss_mb": 250,
            "met": cpu_share <= 0.25 and peak / 2**20 <= 250 and last["lost"] == 0,
        },
    }


def run_bounded_memory(quick: bool, shards: int = 4, sleep: float = 1.0) -> dict[str, Any]:
    """A handler that sleeps ``sleep`` s per batch while every shard has an endless backlog."""
    consumer_cpu, server_cpu = procs.cpus()
    window = 8.0 if quick else 40.0
    stack = procs.start_stack(server_cpu)
    server = procs.start_replay(shards, "full", server_cpu)
    child = _worker(
        server, stack, consumer_cpu, "bounded", "--handler", "sleep", "--sleep", str(sleep)
    )
    try:
        _wait_for(child, lambda s: s["records"] > 0, 90)
        samples: list[tuple[float, int]] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < window:
            samples.append((time.monotonic() - t0, procs.rss_bytes(child.pid)))
            time.sleep(0.25)
        records = child.json_lines()[-1]["records"]
    finally:
        child.stop(signal.SIGKILL)
        server.stop()
        stack.stop()
    mb = [r / 2**20 for _, r in samples]
    third = max(1, len(mb) // 3)
    return {
        "shards": shards,
        "handler_sleep_s": sleep,
        "window_s": window,
        "records_delivered": records,
        "rss_first_third_median_mb": statistics.median(mb[:third]),
        "rss_last_third_median_mb": statistics.median(mb[-third:]),
        "rss_peak_mb": max(mb),
        "rss_min_mb": min(mb),
        "samples_mb": [round(m, 1) for m in mb],
    }


def run_startup(quick: bool) -> dict[str, Any]:
    """Wall time of ``shardline --help`` (and of a bare interpreter, for scale)."""
    runs = 5 if quick else 15

    def timed(args: list[str]) -> list[float]:
        subprocess.run(args, capture_output=True, check=True)  # warm the page cache
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(args, capture_output=True, check=True)
            seconds.append(time.perf_counter() - start)
        return seconds

    help_s = timed([SHARDLINE, "--help"])
    bare_s = timed([procs.PYTHON, "-c", "pass"])
    return {
        "runs": runs,
        "help_median_ms": statistics.median(help_s) * 1e3,
        "help_min_ms": min(help_s) * 1e3,
        "help_max_ms": max(help_s) * 1e3,
        "python_bare_median_ms": statistics.median(bare_s) * 1e3,
        "targets": {"ms": 300, "met": statistics.median(help_s) * 1e3 <= 300},
    }


if __name__ == "__main__":
    import sys

    import orjson

    name = sys.argv[1]
    if name == "many-without-lease-deadlines":  # experiment: see workers.undo_optimisations
        result = measure_many_shards(quick=True, extra=("--undo", "lease-deadlines"))
    else:
        runners = {"many": run_many_shards, "memory": run_bounded_memory, "startup": run_startup}
        result = runners[name](quick=True)
    result.pop("samples_mb", None)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
