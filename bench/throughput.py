"""Throughput per core: the whole pipeline on one pinned core against the replay server.

The replay server (``replay.py``, 8 open shards of endless full pages) and the local
stack (the lease table) run in their own processes on the other core. Each consumer runs
in a fresh process pinned to one core:

* baseline: boto3 ``get_records(Limit=1000)`` + ``TypeDeserializer`` on every NewImage,
  round-robin over the shards (no checkpoints: the baseline is not billed for them);
* shardline (a): ``shardline.Consumer`` with a handler that touches nothing;
* shardline (b): the same with a handler that reads every ``new_image``.

shardline does fetch, parse, dispatch (sync handler on the processor pool) and one
checkpoint per batch (the function adapter checkpoints after each call). Records/s is
measured over a window after a warm-up, from the worker's own status lines.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict

import procs
import replay

SHARDS = 8
VARIANTS = {
    "baseline": "baseline: boto3 get_records + TypeDeserializer",
    "shardline_a": "shardline (a): handler touches nothing",
    "shardline_b": "shardline (b): handler reads every new_image",
    "baseline_gc": "baseline, GC thresholds 10000,100,1000",
    "shardline_b_gc": "shardline (b), GC thresholds 10000,100,1000",
}
#: Informational pair: both consumers with the cyclic GC's thresholds raised (an
#: application-level setting, ``gc.set_threshold``); the targets use the default GC.
GC_TUNED = "10000,100,1000"


class Variant(TypedDict):
    """One consumer's result; ``x_baseline`` is added once every variant has run."""

    label: str
    records_per_s: float
    min: float
    max: float
    cpu_share: float
    samples: list[dict[str, float]]
    x_baseline: NotRequired[float]


def measure(child: procs.Child, warmup: float, window: float) -> dict[str, float]:
    """Records/s and CPU share over ``window`` seconds, ``warmup`` after the first record."""
    first = _wait_for(child, lambda s: s["records"] > 0, 90)
    start = _wait_for(child, lambda s: s["t"] >= first["t"] + warmup, warmup + 30)
    end = _wait_for(child, lambda s: s["t"] >= start["t"] + window, window + 30)
    seconds = end["t"] - start["t"]
    return {
        "records_per_s": (end["records"] - start["records"]) / seconds,
        "cpu_share": (end["cpu"] - start["cpu"]) / seconds,
        "seconds": seconds,
        "records": end["records"] - start["records"],
    }


def _wait_for(
    child: procs.Child, test: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for status in child.json_lines()[::-1]:  # newest first
            if test(status):
                return status
        if child.process.poll() is not None:
            raise RuntimeError(f"worker exited with {child.process.returncode}")
        time.sleep(0.1)
    raise RuntimeError("worker status did not arrive in time")


def run_throughput(quick: bool, repeats: int | None = None) -> dict[str, Any]:
    consumer_cpu, server_cpu = procs.cpus()
    warmup, window = (2.0, 4.0) if quick else (3.0, 10.0)
    repeats = repeats or (1 if quick else 3)
    stack = procs.start_stack(server_cpu)
    server = procs.start_replay(SHARDS, "full", server_cpu)
    streams = f"http://127.0.0.1:{server.port}"
    ddb = f"http://127.0.0.1:{stack.port}"
    labels = {k: v for k, v in VARIANTS.items() if not (quick and k.endswith("_gc"))}
    samples: dict[str, list[dict[str, float]]] = {key: [] for key in labels}
    try:
        for run in range(repeats):
            for key in labels:
                if key.startswith("baseline"):
                    args = ["boto3", "--streams", streams, "--stream-arn", replay.STREAM_ARN]
                else:
                    handler = "none" if key == "shardline_a" else "new_image"
                    args = [
                        "shardline", "--streams", streams, "--ddb", ddb,
                        "--stream-arn", replay.STREAM_ARN, "--handler", handler,
                        "--application", f"tput-{key}-{run}",
                    ]  # fmt: skip
                if key.endswith("_gc"):
                    args += ["--gc", GC_TUNED]
                child = procs.start(
                    [procs.PYTHON, str(procs.BENCH_DIR / "workers.py"), *args],
                    cpu=consumer_cpu,
                    wait_ready=False,
                )
                try:
                    samples[key].append(measure(child, warmup, window))
                finally:
                    child.stop(signal.SIGKILL)
    finally:
        server.stop()
        stack.stop()
    variants: dict[str, Variant] = {}
    for key, label in labels.items():
        rates = [s["records_per_s"] for s in samples[key]]
        variants[key] = {
            "label": label,
            "records_per_s": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
            "cpu_share": statistics.median(s["cpu_share"] for s in samples[key]),
            "samples": samples[key],
        }
    for key, variant in variants.items():
        base = variants["baseline_gc" if key.endswith("_gc") else "baseline"]["records_per_s"]
        variant["x_baseline"] = variant["records_per_s"] / base
    return {
        "shards": SHARDS,
        "records_per_page": 1000,
        "warmup_s": warmup,
        "window_s": window,
        "repeats": repeats,
        "consumer_cpu": consumer_cpu,
        "server_cpu": server_cpu,
        "variants": variants,
        "gc_tuned_thresholds": GC_TUNED,
        "targets": {
            "b_over_baseline": 8.0,
            "b_records_per_s": 30_000,
            "met_ratio": variants["shardline_b"]["x_baseline"] >= 8.0,
            "met_rate": variants["shardline_b"]["records_per_s"] >= 30_000,
        },
    }


if __name__ == "__main__":
    import orjson

    print(orjson.dumps(run_throughput(quick=True), option=orjson.OPT_INDENT_2).decode())
