"""The Dockerfile (hadolint and what a careful read checks) and the compose demo.

No Docker engine exists where these tests run: nothing here builds or starts the image.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import DEPLOY, ROOT, run, tool

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = DEPLOY / "compose" / "compose.yaml"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_finds_nothing() -> None:
    done = run(tool("hadolint"), "--failure-threshold", "info", "--format", "json", DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout or "[]") == []


def test_hadolint_is_really_looking() -> None:
    """The same linter flags a known mistake (so a silent pass above means something)."""
    bad = ROOT / "tests" / "deploy" / "fixtures" / "Dockerfile.bad"
    done = run(tool("hadolint"), "--format", "json", bad)
    codes = {finding["code"] for finding in json.loads(done.stdout)}
    assert {"DL3007", "DL3002"} <= codes


def test_multi_stage_non_root_signals_health_entrypoint() -> None:
    steps = instructions()
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build") and stages[1].endswith("AS runtime")
    runtime = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    words = dict(runtime)
    assert words["USER"] == "10001:10001"
    assert words["STOPSIGNAL"] == "SIGTERM"
    assert "/health/live" in words["HEALTHCHECK"] and "9100" in words["HEALTHCHECK"]
    assert json.loads(words["ENTRYPOINT"]) == ["shardline"]
    copies = [args for word, args in runtime if word == "COPY"]
    assert copies == ["--from=build /opt/shardline /opt/shardline"], "only the venv is copied"


def test_only_the_extras_asked_for_are_installed() -> None:
    steps = instructions()
    build = steps[: max(i for i, (w, _) in enumerate(steps) if w == "FROM")]
    assert ("ARG", 'EXTRAS=""') in build
    (install,) = [args for word, args in build if word == "RUN" and "pip install" in args]
    assert '".${EXTRAS:+[${EXTRAS}]}"' in install
    extras = set(_pyproject()["project"]["optional-dependencies"])
    assert {"local", "postgres"} <= extras


def test_docker_context_holds_only_what_the_image_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # everything is excluded, then the few files the image needs
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied: set[str] = set()
    for word, args in instructions():
        if word == "COPY" and not args.startswith("--from"):
            copied.update(p.rstrip("/").removeprefix("./") for p in args.split()[:-1])
    assert copied == allowed == {"pyproject.toml", "README.md", "src"}
    assert all((ROOT / p).exists() for p in copied)


def _pyproject() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- compose -----------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_compose_runs_local_stack_postgres_and_two_replicating_workers() -> None:
    services = compose()["services"]
    assert set(services) == {"local", "writer", "postgres", "worker-1", "worker-2"}
    assert services["local"]["command"][0] == "local"
    assert services["local"]["build"]["args"]["EXTRAS"] == "local,postgres"
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        args = worker["command"]
        assert args[:3] == ["run", "--config", "/etc/shardline/pipeline.toml"]
        assert args[args.index("--metrics-host") + 1] == "0.0.0.0"
        assert "./pipeline.toml:/etc/shardline/pipeline.toml:ro" in worker["volumes"]
        assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert worker["stop_signal"] == "SIGTERM"
        grace = float(args[args.index("--shutdown-grace") + 1]) if "--shutdown-grace" in args else 5
        assert int(worker["stop_grace_period"].removesuffix("s")) > grace
        assert "PGPASSWORD" in worker["environment"]
    ports = {services[n]["ports"][0] for n in ("worker-1", "worker-2")}
    assert len(ports) == 2


def test_compose_pipeline_replicates_into_the_compose_postgres() -> None:
    import tomllib

    pipeline = tomllib.loads((DEPLOY / "compose" / "pipeline.toml").read_text())
    assert pipeline["source"]["endpoint_url"] == "http://local:4566"
    (sink,) = pipeline["sinks"]
    assert sink["url"].startswith("postgresql://shardline@postgres:5432/replica?")
    assert "password" not in sink["url"].lower() and ":shardline-demo@" not in sink["url"]
    services = compose()["services"]
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "replica"
    assert services["writer"]["volumes"] == ["./writer.py:/opt/demo/writer.py:ro"]
    assert shlex.join(services["writer"]["entrypoint"]) == "python /opt/demo/writer.py"


def test_compose_pipeline_loads_and_its_policy_prints(capsys: pytest.CaptureFixture[str]) -> None:
    from shardline.cli import main

    path = str(DEPLOY / "compose" / "pipeline.toml")
    assert main(["iam-policy", "--config", path, "--region", "us-east-1"]) == 0
    statements = {s["Sid"]: s for s in json.loads(capsys.readouterr().out)["Statement"]}
    assert statements["TheLeaseTable"]["Resource"].endswith(":table/orders-pg")
    assert statements["TheSnapshotSegmentTable"]["Resource"].endswith(":table/orders-pg-snapshot")
    assert statements["ReadTheStream"]["Resource"].startswith("arn:aws:dynamodb:us-east-1:")


def test_compose_writer_creates_the_table_and_writes_changes(
    local_stack: Any, tmp_path: Path
) -> None:
    """The writer the compose demo runs, against the local stack (as compose runs it,
    with the image's Python and botocore: here the project's)."""
    import os
    import subprocess
    import sys
    import time

    from tests.integration.support import dynamodb, unique

    table, ready = unique("compose-orders"), tmp_path / "ready"
    env = dict(os.environ, AWS_ENDPOINT_URL=local_stack.endpoint_url, TABLE=table,
               READY_FILE=str(ready), WRITES_PER_SECOND="200")  # fmt: skip
    writer = subprocess.Popen([sys.executable, str(DEPLOY / "compose" / "writer.py")], env=env)
    try:
        client = dynamodb(local_stack.endpoint_url)
        guard = time.monotonic() + 120  # a hang guard, not a timing check
        count = 0
        while count < 20 and time.monotonic() < guard and writer.poll() is None:
            time.sleep(0.2)
            if ready.exists():
                count = client.scan(TableName=table, Select="COUNT")["Count"]
        assert ready.exists() and count >= 20
        description = client.describe_table(TableName=table)["Table"]
        assert description["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    finally:
        writer.terminate()
        assert writer.wait(timeout=60) == 0  # SIGTERM is a clean exit
