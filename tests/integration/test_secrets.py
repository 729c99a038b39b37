"""Secrets never printed (issue 13, point 8), checked with real commands and known values.

`shardline check`, `run` and `status` run as an operator runs them (subprocesses) against
the local stack, a real PostgreSQL and a real webhook receiver, with known secrets: AWS
credentials with a session token in the environment, a PostgreSQL password (in the sink
URL and through ``secret_env``), a webhook signing secret, a webhook Basic-auth password
and a bearer token, and a wrong password that forces the error path. A careless processor
(tests/integration/leaky_app.py) logs the credentials it sees and raises an error quoting
one. Every stdout and stderr line (text and JSON logs, DEBUG included), ``/metrics`` and
``/health`` are searched for every secret in every spelling a program may print it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import psycopg
import pytest
from psycopg import sql

from tests.integration.support import create_stream_table, dynamodb, unique, wait_until
from tests.postgres.server import HOST, PostgresServer, free_port, unique_database_name
from tests.sinks.support import postgres_items
from tests.sinks.webhook_receiver import Receiver, receiver_on_thread

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ACCESS_KEY_ID = "AKIAKN0WNSECRET12345"
SECRET_ACCESS_KEY = "kn0wn/Secret+Access/Key0123456789abcdefgh"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEKn0wn//////////SessionToken+Value=="
PG_PASSWORD = "pg-Kn0wn-Passw0rd!42"
WRONG_PG_PASSWORD = "pg-Wr0ng-Passw0rd!99"
HOOK_SECRET = "whsec_" + base64.b64encode(b"kn0wn-webhook-signing-key-32byte").decode()
HOOK_PASSWORD = "hook-Kn0wn-Passw0rd"
HOOK_BEARER = "kn0wn-bearer-token-value"
SECRETS = (ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN, PG_PASSWORD, WRONG_PG_PASSWORD,
           HOOK_SECRET, HOOK_PASSWORD, HOOK_BEARER)  # fmt: skip
#: Bits of the secrets that no legitimate output contains (a truncated secret is a leak too).
FRAGMENTS = ("kn0wn", "wr0ng")
ROLE = "leaky"
ITEMS = 5
#: The environment of every command: the known secrets, none of them under a name that
#: says "secret" except the AWS ones (PG_PASS, HOOK_SIGNING and HOOK_BEARER are known to
#: shardline only through the sink options that use them).
ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_SESSION_TOKEN": SESSION_TOKEN,
    "PG_PASS": PG_PASSWORD,
    "PG_WRONG": WRONG_PG_PASSWORD,
    "HOOK_SIGNING": HOOK_SECRET,
    "HOOK_BEARER": HOOK_BEARER,
}


def spellings(secret: str) -> set[str]:
    """``secret`` as a program may print it: as is, URL-encoded, JSON-escaped, in repr."""
    return {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1],
            repr(secret)[1:-1]}  # fmt: skip


def basic_auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def leaks(text: str) -> list[str]:
    """The secrets (in any spelling) and fragments of secrets that ``text`` shows."""
    forms = {form for secret in SECRETS for form in spellings(secret)}
    forms |= {basic_auth("hook", HOOK_PASSWORD), basic_auth(ROLE, PG_PASSWORD)}
    return sorted(form for form in forms if form in text) + [
        bit for bit in FRAGMENTS if bit in text.lower()
    ]


def assert_no_secret(printed: dict[str, str]) -> None:
    """No text in ``printed`` (where -> text) shows a secret; else every place that does,
    and its first line that does."""
    found = {where: leaks(text) for where, text in printed.items()}
    report = {
        where: (shown, next(line for line in printed[where].splitlines() if leaks(line)))
        for where, shown in found.items()
        if shown
    }
    assert not report, "secrets printed:\n" + "\n".join(f"{k}: {v}" for k, v in report.items())


def shardline(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shardline.cli", *argv],
        env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def database(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database owned by role `leaky` (password PG_PASSWORD); its name."""
    name = unique_database_name(request.node.name)
    postgres.create_database(name)
    with psycopg.connect(postgres.admin_dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone() is None:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(PG_PASSWORD)
                )
            )
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(ROLE)
            )
        )
    yield name
    postgres.drop_database(name)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver verifying HOOK_SECRET, on its own thread and loop."""
    with receiver_on_thread(Receiver(secrets=(HOOK_SECRET,))) as server:
        yield server


def pg_url(postgres: PostgresServer, database: str, password: str | None) -> str:
    userinfo = ROLE if password is None else f"{ROLE}:{quote(password, safe='')}"
    return f"postgresql://{userinfo}@{HOST}:{postgres.port}/{database}"


def hook_url(receiver: Receiver) -> str:
    return receiver.url.replace("http://", f"http://hook:{HOOK_PASSWORD}@")


def put_items(endpoint_url: str, table: str) -> None:
    client = dynamodb(endpoint_url)
    for i in range(ITEMS):
        client.put_item(TableName=table, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})


def wait_for(
    worker: subprocess.Popen[bytes], log: Path, done: Callable[[], bool], what: str
) -> None:
    """Wait until ``done()``; fail at once, with the worker's log, if the worker exits."""

    def alive_and_done() -> bool:
        assert worker.poll() is None, (
            f"the worker exited while waiting for {what}:\n" + log.read_text()
        )
        return done()

    try:
        wait_until(alive_and_done, 90, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log.read_text()}") from None


def get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:  # /health answers 503 while not ready
        body = exc.read()
    return body.decode()


# --- the commands ---------------------------------------------------------------------------


def test_check_masks_every_secret_when_it_succeeds_and_when_a_password_is_wrong(
    local_stack: Any, postgres: PostgresServer, database: str, receiver: Receiver
) -> None:
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    source = ["--table", table, "--application", unique("app"),
              "--endpoint-url", local_stack.endpoint_url]  # fmt: skip
    good = shardline(
        "--log-level", "DEBUG", "check", *source,
        "--sink", pg_url(postgres, database, PG_PASSWORD) + "?table=replica",
        "--sink", hook_url(receiver) + "?secret_env=HOOK_SIGNING",
    )  # fmt: skip
    wrong = shardline(
        "--log-level", "DEBUG", "check", *source,
        "--sink", pg_url(postgres, database, WRONG_PG_PASSWORD) + "?table=replica",
    )  # fmt: skip
    assert_no_secret(
        {"check: stdout": good.stdout, "check: stderr": good.stderr,
         "check, wrong password: stdout": wrong.stdout,
         "check, wrong password: stderr": wrong.stderr}
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert f"ok: sink postgresql://{ROLE}:***@" in good.stdout
    assert "ok: sink http://hook:***@" in good.stdout
    assert wrong.returncode == 2
    assert "password authentication failed" in wrong.stderr
    assert f"postgresql://{ROLE}:***@" in wrong.stderr


@pytest.mark.parametrize("where", ["url", "secret_env"])
def test_run_that_cannot_log_in_masks_the_password(
    local_stack: Any, postgres: PostgresServer, database: str, where: str
) -> None:
    table = unique("orders")
    create_stream_table(local_stack.endpoint_url, table)
    sink = {
        "url": pg_url(postgres, database, WRONG_PG_PASSWORD) + "?table=replica",
        "secret_env": pg_url(postgres, database, None) + "?table=replica&secret_env=PG_WRONG",
    }[where]
    done = shardline(
        "--log-level", "DEBUG", "run", "--table", table, "--application", unique("app"),
        "--endpoint-url", local_stack.endpoint_url, "--sink", sink,
    )  # fmt: skip
    assert_no_secret({"run: stdout": done.stdout, "run: stderr": done.stderr})
    assert done.returncode == 2, done.stderr
    assert "password authentication failed" in done.stderr


def write_pipeline(
    path: Path, stack: Any, table: str, app: str, url: str, hook: str, metrics_port: int
) -> str:
    path.write_text(
        f"""
processor = "tests.integration.leaky_app:handle"

[source]
table = "{table}"
application = "{app}"
endpoint_url = "{stack.endpoint_url}"

[worker]
idle_time = 0.1
metrics_port = {metrics_port}

[[sinks]]
url = "{url}"
table = "replica"

[[sinks]]
url = "{hook}"
secret_env = "HOOK_SIGNING"
headers = {{ Authorization = "Bearer ${{HOOK_BEARER}}" }}
"""
    )
    return str(path)


@pytest.mark.parametrize("log_format", ["text", "json", "SHARDLINE_LOG_FORMAT=json"])
def test_run_masks_every_secret_in_logs_metrics_health_and_status(
    local_stack: Any,
    postgres: PostgresServer,
    database: str,
    receiver: Receiver,
    tmp_path: Path,
    log_format: str,
) -> None:
    table, app, port = unique("orders"), unique("app"), free_port()
    create_stream_table(local_stack.endpoint_url, table)
    put_items(local_stack.endpoint_url, table)
    url = pg_url(postgres, database, None).replace(f"{ROLE}@", f"{ROLE}:${{PG_PASS}}@")
    config = write_pipeline(
        tmp_path / "pipeline.toml", local_stack, table, app, url, hook_url(receiver), port
    )
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    env, flags = dict(ENV), ["--log-format", log_format]
    if log_format.startswith("SHARDLINE_"):  # the format from the environment, not a flag
        name, _, log_format = log_format.partition("=")
        env[name], flags = log_format, []
    with out.open("wb") as stdout, err.open("wb") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "shardline.cli", "--log-level", "DEBUG", "run",
             "--config", config, *flags],
            env=env, cwd=ROOT, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    try:
        replica = pg_url(postgres, database, PG_PASSWORD)

        def delivered() -> bool:
            in_replica = len(postgres_items(replica, "replica"))
            return in_replica == ITEMS and len(receiver.first_seen()) >= ITEMS

        wait_for(worker, err, delivered, "every change in the replica and at the hook")
        metrics = get(f"http://127.0.0.1:{port}/metrics")
        health = get(f"http://127.0.0.1:{port}/health")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    status = shardline("status", "--table", table, "--application", app,
                       "--endpoint-url", local_stack.endpoint_url)  # fmt: skip
    status_json = shardline("status", "--table", table, "--application", app,
                            "--endpoint-url", local_stack.endpoint_url, "--json")  # fmt: skip
    logs = err.read_text()
    printed = {
        "run: stdout": out.read_text(), "run: stderr": logs, "/metrics": metrics,
        "/health": health, "status": status.stdout + status.stderr,
        "status --json": status_json.stdout + status_json.stderr,
    }  # fmt: skip
    assert_no_secret(printed)
    assert all(r.headers["authorization"] == f"Bearer {HOOK_BEARER}" for r in receiver.requests)
    assert 'sink="postgresql://leaky:***@' in metrics and 'sink="http://hook:***@' in metrics
    assert json.loads(health)["healthy"] is True
    assert "records with *** and ***" in logs
    assert "cannot log in with ***" in logs and "deprecated token ***" in logs
    if log_format == "json":
        lines = [json.loads(line) for line in logs.splitlines()]
        assert any(line.get("tok") == "***" for line in lines)
    assert status.returncode == 0 and status_json.returncode == 0, status.stderr
    assert json.loads(status_json.stdout)["shards"]
