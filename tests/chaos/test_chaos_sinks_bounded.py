"""The chaos suite with the PostgreSQL and archive sinks, bounded (about a minute each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import sinks_run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("target", ["postgres", "archive"])
def test_bounded_sink_chaos_run_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    code = sinks_run.main(["--bounded", "--target", target, "--out", str(tmp_path)])
    report = capsys.readouterr().out
    assert code == 0, report
    assert "PASS" in report


def test_differing_counts_changed_missing_and_extra_rows() -> None:
    source = {"a": 1, "b": 2, "c": 3}
    assert sinks_run.differing(source, dict(source)) == 0
    assert sinks_run.differing(source, {"a": 1, "b": 1, "d": 4}) == 3  # b older, c gone, d extra
