"""`shardline run --lambda` end to end: delivery flags, failure destination, metrics, JSON logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.support import create_stream_table, dynamodb, unique, wait_until

pytestmark = pytest.mark.integration


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_lambda_handler_with_controls_destination_and_metrics(
    local_stack: Any, tmp_path: Path
) -> None:
    endpoint = local_stack.endpoint_url
    table, app = unique("lambda"), unique("app")
    arn = create_stream_table(endpoint, table)
    client = dynamodb(endpoint)
    for key in ("a", "b", "poison-1", "c"):
        client.put_item(TableName=table, Item={"pk": {"S": key}})
    records, dead = tmp_path / "records.txt", tmp_path / "dead"
    dead.mkdir()
    port = free_port()
    command = [
        sys.executable, "-m", "shardline.cli", "run",
        "--lambda", "tests.integration.lambda_cli_app:handler", "--function-name", "orders-fn",
        "--table", table, "--application", app, "--endpoint-url", endpoint,
        "--idle-time", "0.1", "--batch-size", "10", "--report-batch-item-failures",
        "--maximum-retry-attempts", "1", "--on-failure", f"file://{dead}",
        "--metrics-port", str(port), "--log-format", "json",
    ]  # fmt: skip
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            command, env={**os.environ, "RECORDER_FILE": str(records)}, stderr=log, stdout=log
        )
    try:
        wait_until(lambda: records.exists() and len(records.read_text().split("\n")) > 3, 30, "a-c")
        wait_until(lambda: any(dead.rglob("*.json")), 30, "the poison record's failure document")
        lines = records.read_text().splitlines()
        # As in Lambda, the retry starts at the lowest failure, so "c" may come twice.
        assert {line.split()[2] for line in lines} == {"a", "b", "c"}
        assert all(line.split()[:2] == ["orders-fn", arn] for line in lines)
        document = json.loads(next(dead.rglob("*.json")).read_text())
        assert "poison-1" in json.dumps(document)

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            scraped = answer.read()
        families = {f.name: f for f in text_string_to_metric_families(scraped.decode())}
        polled = families["shardline_records_polled"].samples[0].value
        assert polled >= 4
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            health = json.loads(answer.read())
        assert health["healthy"] is True
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    json_lines = [line for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert json_lines and all("message" in json.loads(line) for line in json_lines)
