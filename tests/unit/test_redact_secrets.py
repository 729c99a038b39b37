"""Known secrets (shardline.redact.KnownSecrets), where they are found, and the places that
mask them: log formatters, /metrics, /health, `shardline status` cells, sink names."""

from __future__ import annotations

import base64
import json
import logging
import sys
from typing import Any

import pytest

from shardline.metrics import Metrics
from shardline.observability import JsonFormatter, ObservabilityServer, TextFormatter
from shardline.redact import (
    MASK,
    SECRETS,
    KnownSecrets,
    redact_text,
    secrets_in_environ,
    secrets_in_options,
    secrets_in_url,
)
from shardline.sinks.options import mask_url, parse_sink_url
from shardline.status import ShardStatus
from shardline.views import status_cells, status_table

TOKEN = 'FwoGZXIvYXdzEBYaDKn0wnT0ken+/quote"back\\slash'
PASSWORD = "pg-Pa55 w0rd@#&="


# --- KnownSecrets -------------------------------------------------------------------------


def test_known_values_are_masked_in_every_spelling() -> None:
    secrets = KnownSecrets()
    secrets.add(TOKEN, PASSWORD, None, "")
    encoded = "pg-Pa55%20w0rd%40%23%26%3D pg-Pa55+w0rd%40%23%26%3D"
    text = f"{TOKEN} {json.dumps(TOKEN)} {TOKEN!r} {encoded}"
    masked = secrets.mask(text)
    assert "Kn0wn" not in masked and "w0rd" not in masked
    assert masked.count(MASK) == 5


def test_short_values_are_not_masked_everywhere() -> None:
    secrets = KnownSecrets()
    secrets.add("testing", "demo")
    assert len(secrets) == 0
    assert secrets.redact("testing the demo: password=testing") == "testing the demo: password=***"


def test_the_longest_known_value_is_masked_first() -> None:
    secrets = KnownSecrets()
    secrets.add("abcdefgh", "abcdefgh-and-more")
    assert secrets.mask("x abcdefgh-and-more y") == f"x {MASK} y"


def test_redact_value_walks_plain_data() -> None:
    secrets = KnownSecrets()
    secrets.add(TOKEN)
    value = {"detail": f"failed with {TOKEN}", "n": 3, "ok": True, "none": None,
             "list": [TOKEN, 1.5], "other": ValueError(TOKEN), "session_token": "x"}  # fmt: skip
    assert secrets.redact_value(value) == {
        "detail": f"failed with {MASK}", "n": 3, "ok": True, "none": None,
        "list": [MASK, 1.5], "other": MASK, "session_token": MASK,
    }  # fmt: skip


# --- where secrets are found ---------------------------------------------------------------


def test_secrets_in_environ() -> None:
    environ = {
        "AWS_ACCESS_KEY_ID": "AKIAKNOWNKEY12345678",
        "AWS_SECRET_ACCESS_KEY": "secret-access-key-value",
        "AWS_SESSION_TOKEN": "session-token-value",
        "PGPASSWORD": "pg-password-value",
        "HOOK_SECRET": "whsec_value",
        "HTTPS_PROXY": "http://bob:proxy-password@proxy:3128",
        "PWD": "/work/main",
        "HOME": "/home/user",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
    }
    found = secrets_in_environ(environ)
    for value in ("AKIAKNOWNKEY12345678", "secret-access-key-value", "session-token-value",
                  "pg-password-value", "whsec_value", "proxy-password"):  # fmt: skip
        assert value in found
    assert "/work/main" not in found and "/home/user" not in found
    assert not [value for value in found if "127.0.0.1" in value]


def test_secrets_in_url() -> None:
    found = secrets_in_url("https://hook:p%40ss-word@h/x?token=tok-value&code=az-code&a=1")
    basic = base64.b64encode(b"hook:p@ss-word").decode()
    assert {"p%40ss-word", "p@ss-word", basic, "tok-value", "az-code"} <= set(found)
    assert "1" not in found
    assert secrets_in_url("postgresql://app@db/app?sslmode=require") == []


def test_secrets_in_a_keyword_dsn() -> None:
    assert secrets_in_url("host=db password=hunter2 dbname=x") == ["hunter2"]
    assert secrets_in_url("host=db password='a b\\'c' sslpassword=key-pass") == [
        "a b'c",
        "key-pass",
    ]


def test_a_postgres_sink_built_in_code_remembers_its_password() -> None:
    from shardline.sinks.postgres import PostgresSink

    sink = PostgresSink("host=db user=app password=kw-dsn-pass-1234", password="given-pass-1234")
    assert "kw-dsn-pass-1234" in SECRETS and "given-pass-1234" in SECRETS
    assert "kw-dsn-pass-1234" not in sink.name


def test_a_webhook_sink_built_in_code_remembers_its_secrets() -> None:
    from shardline.sinks.webhook import WebhookSink

    sink = WebhookSink(
        "https://user:hook-pass-1234@hooks.example.com/in",
        secret="whsec_a2V5LWluLWNvZGUtMTIzNA==",
        headers={"Authorization": "Bearer code-token-1234"},
    )
    for secret in ("hook-pass-1234", "whsec_a2V5LWluLWNvZGUtMTIzNA==", "code-token-1234"):
        assert secret in SECRETS
    assert "hook-pass-1234" not in sink.name


def test_secrets_in_options() -> None:
    options: dict[str, Any] = {
        "secret": "whsec_one,whsec_two",
        "headers": {
            "Authorization": "Bearer bearer-token",
            "X-Api-Key": "api-key-value",
            "Accept": "application/json",
        },
        "header.Authorization": "Basic dXNlcjpwYXNz",
        "secret_env": "HOOK_SECRET",
        "table": "orders",
    }
    found = set(secrets_in_options(options))
    assert {"whsec_one", "whsec_two", "bearer-token", "api-key-value", "dXNlcjpwYXNz"} <= found
    assert not found & {"HOOK_SECRET", "orders", "application/json"}


def test_parsing_a_sink_url_remembers_its_secrets() -> None:
    parse_sink_url(
        "https://hook:basic-pass-1234@h/x?secret_env=HOOK&token=query-token-1234",
        extra={"headers": {"Authorization": "Bearer header-token-1234"}},
        environ={"HOOK": "whsec_env-secret-1234"},
    ).secret()
    for value in ("basic-pass-1234", "query-token-1234", "header-token-1234",
                  "whsec_env-secret-1234"):  # fmt: skip
        assert value in SECRETS


# --- patterns -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def", f"Authorization: Bearer {MASK}"),
        ("authorization=Basic dXNlcjpwYXNz,", f"authorization=Basic {MASK},"),
        ("'Authorization': 'tok'", f"'Authorization': '{MASK}'"),
    ],
)
def test_authorization_values_are_masked_with_their_scheme_kept(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_a_keyword_dsn_is_masked_as_a_sink_name() -> None:
    assert mask_url("host=db user=app password=hunter2 dbname=x") == (
        f"host=db user=app password={MASK} dbname=x"
    )


# --- where they are masked -------------------------------------------------------------------


def _record(message: str, *args: object, exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = sys.exc_info() if exc else None
    return logging.getLogger("t").makeRecord(
        "t", logging.ERROR, __file__, 1, message, args, exc_info, extra=extra
    )


def test_log_formatters_mask_message_extras_and_traceback() -> None:
    secrets = KnownSecrets()
    secrets.add(TOKEN)
    try:
        raise RuntimeError(f"refused {TOKEN}")
    except RuntimeError:
        record = _record("token is %s", TOKEN, exc=True, detail={"t": TOKEN}, err=OSError(TOKEN))
    text = TextFormatter(secrets).format(record)
    line = JsonFormatter(secrets).format(record)
    assert "Kn0wn" not in text and "Kn0wn" not in line
    assert "RuntimeError: refused ***" in text
    entry = json.loads(line)
    assert entry["message"] == f"token is {MASK}"
    assert entry["detail"] == {"t": MASK} and entry["err"] == MASK
    assert "refused ***" in entry["exc_info"]


def test_metrics_exposition_masks_known_secrets_and_nothing_else() -> None:
    metrics = Metrics()
    metrics.sink_records_written.labels("postgresql://app:***@db/app").inc(3)
    metrics.aws_throttles.labels("GetRecords").inc()
    metrics.iterator_age.labels("shardId-00000001700000000000-abcdef12").set(5)
    from prometheus_client import generate_latest

    assert metrics.exposition() == generate_latest(metrics.registry)
    SECRETS.add("label-secret-9876")
    metrics.sink_records_written.labels("custom label-secret-9876").inc()
    assert b"label-secret-9876" not in metrics.exposition()


class _LeakyHealth:
    def health(self) -> dict[str, Any]:
        return {"ready": False, "healthy": False, "leases": 0,
                "detail": "cannot renew: token health-secret-5432"}  # fmt: skip


def test_health_details_are_masked() -> None:
    SECRETS.add("health-secret-5432")
    health = ObservabilityServer(Metrics(), _LeakyHealth()).current_health()
    assert health == {"ready": False, "healthy": False, "leases": 0,
                      "detail": f"cannot renew: token {MASK}"}  # fmt: skip


def test_status_cells_are_masked() -> None:
    SECRETS.add("owner-secret-1234")
    row = ShardStatus("shardId-1", None, True, "worker owner-secret-1234", "TRIM_HORIZON", "0",
                      None)  # fmt: skip
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(status_table("arn:aws:dynamodb:us-east-1:1:table/T/stream/x", [row]))
    printed = console.export_text()
    assert "owner-secret-1234" not in printed and f"worker {MASK}" in printed
    assert status_cells(row)[3] == "worker owner-secret-1234"  # the cells themselves are data
