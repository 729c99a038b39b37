"""`shardline check` with notification sinks: every problem one line naming the sink."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.support import create_stream_table, unique
from tests.sinks.test_cli_sinks import run_cli

pytestmark = pytest.mark.integration


def test_check_reaches_every_notification_sink(
    local_stack: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    monkeypatch.setenv("HOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    code, out, err = run_cli(
        capsys, "check", "--table", table, "--application", "a",
        "--endpoint-url", local_stack.endpoint_url,
        "--sink", "http://127.0.0.1:9/hook?secret_env=HOOK_SECRET",
        "--sink", "sqs://no-such-queue",
        "--sink", "sns://arn:aws:sns:us-east-1:123456789012:no-such-topic",
        "--sink", "eventbridge://no-such-bus",
    )  # fmt: skip
    lines = [line for line in err.splitlines() if line.startswith("shardline: error:")]
    assert code == 2 and "ok: source" in out
    assert len(lines) == 4
    for name in ("http://127.0.0.1:9/hook", "sqs://no-such-queue", "no-such-topic",
                 "eventbridge://no-such-bus"):  # fmt: skip
        assert sum(name in line for line in lines) == 1
    assert "MfKQ9r8" not in out + err


def test_check_refuses_a_malformed_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "not-a-whsec-secret")
    code, _, err = run_cli(
        capsys, "check", "--table", "T", "--application", "a",
        "--sink", "https://hooks.example.com/x?secret_env=HOOK_SECRET",
    )  # fmt: skip
    assert code == 2 and "whsec_" in err and "not-a-whsec-secret" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
