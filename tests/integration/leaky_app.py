"""A careless processor for tests/integration/test_secrets.py: it logs the credentials it
can see in its environment, and its first call warns and fails with messages that quote
them.

shardline cannot stop user code from writing secrets into a log call; its log formatters
must still keep them off the log lines.
"""

from __future__ import annotations

import logging
import os
import warnings

from shardline.records import StreamRecord

log = logging.getLogger("leaky_app")
_calls = 0


def handle(records: list[StreamRecord]) -> None:
    global _calls
    _calls += 1
    secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY")
    token = os.environ.get("AWS_SESSION_TOKEN")
    log.warning("leaky: %d records with %s and %s", len(records), secret_key, token)
    log.info("leaky: signing with %s", os.environ.get("HOOK_SIGNING"), extra={"tok": token})
    if _calls == 1:
        warnings.warn(f"leaky: deprecated token {token}", UserWarning, stacklevel=1)
        raise RuntimeError(f"leaky: cannot log in with {os.environ.get('PG_PASS')}")
