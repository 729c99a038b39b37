"""`python -m shardline.multilang` as a process: config errors, a crash, SIGTERM."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import (
    VersionedWriter,
    create_stream_table,
    lease_items,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration

FAKE_CHILD = Path(__file__).resolve().parents[1] / "compat" / "fake_child.py"


def daemon(properties: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shardline.multilang", "--properties", str(properties)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_a_bad_value_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "app.properties"
    path.write_text(
        f"executableName = {sys.executable}\napplicationName = app-1\n"
        "streamName = Orders\nfailoverTimeMillis = ten\n"
    )
    process = daemon(path)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err.strip().splitlines()[-1] == (
        f"shardline: error: {path}:4: failoverTimeMillis = 'ten': not an integer"
    )


def test_a_missing_executable_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "app.properties"
    path.write_text(
        "executableName = no-such-program x\napplicationName = app-1\nstreamName = T1x\n"
    )
    process = daemon(path)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "'no-such-program' is not an executable file nor a command on PATH" in err


def test_crash_restarts_one_shard_and_sigterm_hands_off(local_stack: Any, tmp_path: Path) -> None:
    table, app = unique("mld"), unique("mld-app")
    create_stream_table(local_stack.endpoint_url, table)
    writer = VersionedWriter(local_stack.endpoint_url, table, keys=6)
    writer.write_round()
    local_stack.split(table)
    writer.write_round()
    child_log = tmp_path / "child.jsonl"
    path = tmp_path / "app.properties"
    path.write_text(
        f"executableName = {sys.executable} {FAKE_CHILD}\napplicationName = {app}\n"
        f"streamName = {table}\ninitialPositionInStream = TRIM_HORIZON\n"
        f"kinesisEndpoint = {local_stack.endpoint_url}\n"
        f"dynamoDBEndpoint = {local_stack.endpoint_url}\nregionName = us-east-1\n"
        "idleTimeBetweenReadsInMillis = 100\nparentShardPollIntervalMillis = 200\n"
        "failoverTimeMillis = 3000\nshutdownGraceMillis = 2000\nmaxActiveThreads = 4\n"
    )
    env = {
        "FAKE_CHILD_LOG": str(child_log),
        "FAKE_CHILD_MODE": "crash-once",
        "FAKE_CHILD_STATE": str(tmp_path),
    }
    process = daemon(path, env)
    try:
        wait_until(lambda: seen(child_log) >= writer.expected(), 60, "every record")
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, err = process.communicate(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "maxActiveThreads: ignored" in err
    assert "closed its stdout (exit code 3)" in err
    messages = [json.loads(line) for line in child_log.read_text().splitlines()]
    by_pid: dict[int, list[str]] = {}
    for m in messages:
        if "action" in m:
            by_pid.setdefault(m["pid"], []).append(m["action"])
    crashed = [a for a in by_pid.values() if a == ["initialize", "processRecords"]]
    assert len(crashed) == 1, by_pid
    open_shard_children = [
        a for a in by_pid.values() if a[-2:] == ["shutdownRequested", "leaseLost"]
    ]
    assert open_shard_children, by_pid
    assert not [i for i in lease_items(local_stack.endpoint_url, app) if "leaseOwner" in i]
    assert elapsed < 10


def seen(child_log: Path) -> set[tuple[str, int]]:
    result: set[tuple[str, int]] = set()
    if not child_log.exists():
        return result
    for line in child_log.read_text().splitlines():
        message = json.loads(line)
        for record in message.get("records", []):
            change = json.loads(base64.b64decode(record["data"]))
            image = change["dynamodb"]["NewImage"]
            result.add((image["pk"]["S"], int(image["version"]["N"])))
    return result
