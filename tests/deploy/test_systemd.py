"""deploy/systemd/shardline@.service: read for the settings the issue asks for, and
checked with `systemd-analyze verify` where systemd is installed (it is not installed
for this test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deploy.tools import DEPLOY, ROOT, run

UNIT = DEPLOY / "systemd" / "shardline@.service"


def settings() -> dict[str, list[str]]:
    """``Section.Key`` -> values (systemd allows a key more than once)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def _default_shutdown_grace() -> float:
    from shardline.cli import _parser

    return float(_parser().parse_args(["run", "--table", "T", "--application", "a"]).shutdown_grace)


def test_restart_signal_and_stop_timeout_above_the_grace() -> None:
    unit = settings()
    assert unit["Service.Restart"] == ["on-failure"]
    assert unit["Service.KillSignal"] == ["SIGTERM"]
    assert unit["Service.KillMode"] == ["mixed"]  # SIGTERM to shardline only; it stops its children
    (exec_start,) = unit["Service.ExecStart"]
    words = exec_start.split()
    grace = (
        float(words[words.index("--shutdown-grace") + 1])
        if "--shutdown-grace" in words
        else _default_shutdown_grace()
    )
    assert int(unit["Service.TimeoutStopSec"][0]) > grace
    assert words[1:4] == ["run", "--config", "/etc/shardline/%i.toml"]
    assert unit["Service.User"] == ["shardline"]
    assert "SHARDLINE_METRICS_PORT=9100" in unit["Service.Environment"]
    assert unit["Service.EnvironmentFile"] == ["-/etc/shardline/%i.env"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the issue asks not to install systemd)")
    # verify checks that ExecStart's program exists: point it at this checkout's shardline.
    text = UNIT.read_text().replace(
        "/opt/shardline/bin/shardline", str(ROOT / ".venv/bin/shardline")
    )
    (tmp_path / "shardline@.service").write_text(text)
    (tmp_path / "shardline@orders-pg.service").symlink_to(tmp_path / "shardline@.service")
    done = run(analyze, "verify", "--man=no", tmp_path / "shardline@orders-pg.service")
    # verify exits 0 on settings it ignores; any diagnostic at all is a failure here
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
