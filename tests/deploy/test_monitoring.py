"""deploy/monitoring: the alert rules (promtool check and unit tests), the Grafana
dashboard, and every metric either names compared with a running worker's /metrics."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import DEPLOY, run, system_tool

MONITORING = DEPLOY / "monitoring"
RULES = MONITORING / "alerts.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

_FUNCTIONS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "humanize", "label_values",
}  # fmt: skip


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_expressions() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def grafana_to_promql(expr: str) -> str:
    """A panel's query with Grafana's variables replaced as Grafana would."""
    return expr.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, grouping labels,
    strings, ranges, numbers and function names removed)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {w for w in words if w not in _FUNCTIONS and not re.fullmatch(r"\d+[smhd]?", w)}


def test_metric_name_extraction() -> None:
    expr = 'sum by (job, le) (rate(a_total{x="b_c"}[5m])) > 0 and on (i) b == 0 unless c'
    assert metric_names(expr) == {"a_total", "b", "c"}


def test_promtool_checks_the_rules() -> None:
    done = run(system_tool("promtool"), "check", "rules", RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in done.stdout


def test_promtool_unit_tests_every_alert() -> None:
    tests = MONITORING / "alerts.test.yaml"
    done = run(system_tool("promtool"), "test", "rules", tests)
    assert done.returncode == 0, done.stdout + done.stderr
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    cases = yaml.safe_load(tests.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in cases
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == alerts, "every alert has a test where it fires"


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(e)}
                    for i, e in enumerate(dashboard_expressions())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    done = run(system_tool("promtool"), "check", "rules", path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_has_the_panels_asked_for() -> None:
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    titles = " | ".join(p["title"].lower() for p in panels)
    for words in ("records in", "records out", "iterator age per shard", "failures",
                  "dropped", "lease moves", "checkpoint latency", "snapshot"):  # fmt: skip
        assert words in titles, words
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]


@pytest.fixture(scope="module")
def exposed(local_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name a running `shardline run` worker exposes or declares."""
    from tests.integration.support import create_stream_table, dynamodb, unique

    table = unique("monitoring")
    create_stream_table(local_stack.endpoint_url, table)
    dynamodb(local_stack.endpoint_url).put_item(TableName=table, Item={"pk": {"S": "a"}})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable, "-m", "shardline.cli", "run", "shardline.demo_app:handle",
        "--table", table, "--application", unique("monitoring-app"),
        "--endpoint-url", local_stack.endpoint_url, "--metrics-port", str(port),
        "--idle-time", "0.1",
    ]  # fmt: skip
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(command, stdout=out, stderr=out, env=dict(os.environ))
        try:
            text = _scrape_once_ready(f"http://127.0.0.1:{port}", worker, log)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    return _sample_names(text)


def _scrape_once_ready(url: str, worker: subprocess.Popen[bytes], log: Path) -> str:
    """/metrics once the worker holds its lease and has read the record (waits as long as
    the worker needs; gives up only if the worker exits or after a hang guard)."""
    guard = time.monotonic() + 120
    while time.monotonic() < guard:
        assert worker.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
                text = str(answer.read().decode())
            if "shardline_ready 1.0" in text and "shardline_iterator_age_milliseconds{" in text:
                return text
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the worker never became ready: {log.read_text()}")


def _sample_names(text: str) -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
    }
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            # a labelled metric with no series yet is declared here only (counters are
            # declared as NAME_total by the text format)
            family = family.removesuffix("_total") if kind == "counter" else family
            names |= {family + suffix for suffix in suffixes.get(kind, ("",))}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_every_metric_a_rule_or_panel_names_exists_in_a_running_worker(
    exposed: set[str],
) -> None:
    assert "shardline_records_polled_total" in exposed  # the scrape worked
    used: dict[str, set[str]] = {}
    for expr in rule_expressions():
        for name in metric_names(expr):
            used.setdefault(name, set()).add("alerts.yaml")
    for expr in dashboard_expressions():
        for name in metric_names(grafana_to_promql(expr)):
            used.setdefault(name, set()).add("grafana-dashboard.json")
    missing = {name: sorted(where) for name, where in used.items() if name not in exposed}
    assert missing == {}
    assert len(used) >= 20
