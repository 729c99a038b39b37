"""The deployment checkers, installed by deploy/check/install.sh (`make deploy-deps`) in
.venv-deploy/ apart from the project's .venv, and called here by path.

A missing tool fails the test that needs it (with the command that installs it): these
checks are part of `make test`, not optional extras.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV = Path(os.environ.get("DEPLOY_VENV", ROOT / ".venv-deploy"))
#: Guards against a hung tool only (nothing here times anything).
HANG_GUARD = 600


def tool(name: str, venv: str = "tools") -> Path:
    path = VENV / venv / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make deploy-deps` (deploy/check/install.sh)")
    return path


def system_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: run `make deploy-deps` (deploy/check/install.sh)")
    return path


def run(
    *command: str | Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_GUARD,
        check=False,
    )


def offline_env() -> dict[str, str]:
    """checkov without the Prisma Cloud platform: no API key (so nothing is uploaded and no
    platform policies are fetched), no mapping download, no update check."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))}
    env.update(BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false")
    return env


def checkov(directory: Path, framework: str) -> dict[str, Any]:
    """checkov's JSON report of ``directory`` for one framework (offline)."""
    done = run(
        tool("checkov"), "--directory", directory, "--framework", framework,
        "--skip-download", "--output", "json", env=offline_env(),
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    (only,) = [r for r in reports if r.get("check_type") == framework]
    return dict(only)


def failed_checks(report: dict[str, Any]) -> list[str]:
    return [
        f"{c['check_id']} {c['check_name']} ({c['resource']}, {c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]
