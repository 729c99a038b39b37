"""`shardline run --sink`, `--config`, SHARDLINE_* and `shardline check`, as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shardline.cli import main
from tests.integration.support import create_stream_table, dynamodb, unique, wait_until
from tests.sinks.support import postgres_items, source_items

pytestmark = pytest.mark.integration


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_pipeline(path: Path, body: str) -> str:
    path.write_text(body)
    return str(path)


def put_items(endpoint_url: str, table: str, count: int) -> None:
    client = dynamodb(endpoint_url)
    for i in range(count):
        client.put_item(
            TableName=table, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}, "s": {"S": "x"}}
        )


def test_run_with_a_sink_url_replicates_and_stops_on_sigterm(
    local_stack: Any, pg_dsn: str, tmp_path: Path
) -> None:
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    put_items(local_stack.endpoint_url, table, 30)
    user_dsn, _, _ = pg_dsn.partition("?")
    dsn_without_password = user_dsn.replace(":secret@", "@")
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    env = {**os.environ, "PG_SECRET": "secret", "SHARDLINE_APPLICATION": unique("app")}
    process = subprocess.Popen(
        [sys.executable, "-m", "shardline.cli", "run", "--table", table,
         "--endpoint-url", local_stack.endpoint_url, "--idle-time", "0.1",
         "--sink", f"{dsn_without_password}?table=replica&secret_env=PG_SECRET"],
        env=env, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        expected = source_items(local_stack.endpoint_url, table)
        wait_until(lambda: postgres_items(pg_dsn, "replica") == expected, 60, "the replica")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    text = (tmp_path / "worker.log").read_text()
    assert "secret" not in text.replace("secret_env", "").replace("PG_SECRET", "")


def test_pipeline_file_passes_check(
    local_stack: Any, pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    monkeypatch.setenv("PIPELINE_DSN", pg_dsn)
    config = write_pipeline(
        tmp_path / "pipeline.toml",
        f"""
[source]
table = "{table}"
application = "{unique("app")}"
endpoint_url = "{local_stack.endpoint_url}"

[delivery]
batch_size = 50

[[sinks]]
url = "${{PIPELINE_DSN}}"
table = "from_file"
mode = "changelog"
""",
    )
    code, out, err = run_cli(capsys, "check", "--config", config)
    assert code == 0, err
    assert "ok: source" in out and "ok: sink" in out
    assert "secret" not in out


def test_check_reports_each_problem_on_one_line(
    local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    code, _, err = run_cli(
        capsys, "check", "--table", table, "--application", "a",
        "--endpoint-url", local_stack.endpoint_url,
        "--sink", "postgresql://nobody:hunter2@127.0.0.1:1/db?table=t",
    )  # fmt: skip
    lines = [line for line in err.splitlines() if line.startswith("shardline: error:")]
    assert code == 2
    assert len(lines) == 1 and "cannot connect" in lines[0]
    assert "hunter2" not in err


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[source]\ntable='T'\napplication='a'\n[[sinks]]\nurl='mysql://x/y'\n", "unknown kind"),
        ("[source]\ntable='T'\napplication='a'\ncolour='red'\n", "unknown key(s) colour"),
        ("[source]\ntable='${NOT_SET_ANYWHERE}'\n", "NOT_SET_ANYWHERE"),
        ("[source]\ntable='T'\napplication='a'\n[[sinks]]\nurl='postgresql://h/d?bogus=1'\n",
         "unknown option(s) bogus"),
        ("[source]\ntable = 'T'\n[delivery]\nbatch_size = 0\n", "application"),
    ],
)  # fmt: skip
def test_bad_pipeline_files_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, message: str
) -> None:
    config = write_pipeline(tmp_path / "p.toml", body)
    code, _, err = run_cli(capsys, "run", "--config", config)
    assert code == 2
    assert message in err, err
    assert "Traceback" not in err


def test_environment_overrides_the_file_and_flags_override_both(
    local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    config = write_pipeline(tmp_path / "p.toml", "[source]\ntable='FromFile'\napplication='a'\n")
    monkeypatch.setenv("SHARDLINE_TABLE", "FromEnv")
    code, _, err = run_cli(
        capsys, "check", "--config", config, "--endpoint-url", local_stack.endpoint_url
    )
    assert code == 2 and "'FromEnv'" in err
    code, _, err = run_cli(
        capsys, "check", "--config", config, "--table", "FromFlag",
        "--endpoint-url", local_stack.endpoint_url,
    )  # fmt: skip
    assert code == 2 and "'FromFlag'" in err


def test_status_shows_snapshot_progress(
    local_stack: Any, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from tests.sinks.support import RunningSinks

    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    put_items(local_stack.endpoint_url, table, 25)
    app = unique("app")

    async def copy() -> None:
        from shardline.sinks.postgres import PostgresSink

        sink = PostgresSink(pg_dsn, table="snap", snapshot=True)
        async with RunningSinks(local_stack, table, [sink], application=app):
            expected = source_items(local_stack.endpoint_url, table)
            await asyncio.to_thread(
                wait_until, lambda: postgres_items(pg_dsn, "snap") == expected, 60, "the copy"
            )

    asyncio.run(copy())
    code, out, err = run_cli(
        capsys, "status", "--table", table, "--application", app,
        "--endpoint-url", local_stack.endpoint_url, "--json",
    )  # fmt: skip
    assert code == 0, err
    import json

    assert json.loads(out)["snapshot"] == {"segments_done": 4, "segments": 4, "items_copied": 25}
