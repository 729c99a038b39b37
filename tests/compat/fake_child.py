"""A MultiLang child written against the protocol text alone, with scriptable faults.

Used by the integration tests of the daemon (the compat tests use the real clients).
Environment: ``FAKE_CHILD_LOG`` (a file: one JSON line per message received, with the
pid), ``FAKE_CHILD_MODE`` (comma-separated: ``crash-once``, ``hang-once``,
``wrong-status-once``, ``stray``, ``no-shard-end``, ``slow-shutdown``, ``no-checkpoint``),
``FAKE_CHILD_STATE`` (a directory for the "-once" markers).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

MODES = set(filter(None, os.environ.get("FAKE_CHILD_MODE", "").split(",")))


def record(message: dict[str, Any]) -> None:
    path = os.environ.get("FAKE_CHILD_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"pid": os.getpid(), **message}) + "\n")


def once(name: str) -> bool:
    """True the first time ``name`` is asked for (across processes)."""
    if name not in MODES:
        return False
    marker = os.path.join(os.environ.get("FAKE_CHILD_STATE", "."), name)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def send(message: dict[str, Any]) -> None:
    sys.stdout.write("\n" + json.dumps(message) + "\n")
    sys.stdout.flush()


def checkpoint(sequence_number: str | None) -> dict[str, Any]:
    send({"action": "checkpoint", "sequenceNumber": sequence_number})
    while True:
        line = sys.stdin.readline()
        if not line:
            sys.exit(0)
        if line.strip():
            reply: dict[str, Any] = json.loads(line)
            record({"reply": reply})
            return reply


def handle(message: dict[str, Any]) -> str:
    action = str(message["action"])
    if action == "processRecords":
        if once("crash-once"):
            sys.exit(3)
        if once("hang-once"):
            time.sleep(3600)
        if "stray" in MODES:
            print("a stray line on stdout", flush=True)
            print("a line on stderr", file=sys.stderr, flush=True)
        if message["records"] and "no-checkpoint" not in MODES:
            checkpoint(message["records"][-1]["sequenceNumber"])
        if once("wrong-status-once"):
            return "initialize"
    elif action == "shardEnded" and "no-shard-end" not in MODES:
        checkpoint(None)
    elif action == "shutdownRequested":
        if "slow-shutdown" in MODES:
            time.sleep(3600)
        checkpoint(None)
    return action


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        record(message)
        send({"action": "status", "responseFor": handle(message)})


if __name__ == "__main__":
    main()
