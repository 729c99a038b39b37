"""The chaos suite, bounded to about a minute, as part of ``make test``.

On failure the report names its seed and the command that replays the same driver
schedule (``make chaos SEED=… BOUNDED=1``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.chaos import run

pytestmark = pytest.mark.integration


def test_bounded_chaos_run_breaks_no_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run.main(["--bounded", "--out", str(tmp_path)])
    report = capsys.readouterr().out
    assert code == 0, report
    assert re.search(r"^lost changes +0$", report, re.MULTILINE), report
