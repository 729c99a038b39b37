"""The chaos suite, bounded to about a minute, as part of ``make test``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import run

pytestmark = pytest.mark.integration


def test_bounded_chaos_run_breaks_no_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run.main(
        ["--duration", "35", "--changes", "2500", "--keys", "50", "--workers", "3",
         "--pause", "2.5", "5", "--reshard-every", "4", "--drain-timeout", "120",
         "--out", str(tmp_path)]
    )  # fmt: skip
    report = capsys.readouterr().out
    assert code == 0, report
    assert "lost changes                         0" in report
