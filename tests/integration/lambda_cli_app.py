"""A Lambda-style handler for the `shardline run --lambda` subprocess test.

Keys starting with "poison" always fail; the others are appended to RECORDER_FILE.
"""

from __future__ import annotations

import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    with open(os.environ["RECORDER_FILE"], "a", encoding="utf-8") as out:
        for record in event["Records"]:
            key = record["dynamodb"]["Keys"]["pk"]["S"]
            if key.startswith("poison"):
                failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
            else:
                out.write(f"{context.function_name} {record['eventSourceARN']} {key}\n")
    return {"batchItemFailures": failures}
