"""The compose demo's writer: creates the Orders table (stream on) in the local stack,
then inserts, updates and deletes orders at a steady rate until stopped.

Runs in the shardline image (botocore is a dependency of shardline); settings from the
environment: AWS_ENDPOINT_URL, AWS_REGION, WRITES_PER_SECOND (default 20), TABLE (default
Orders), READY_FILE (default /tmp/table-ready: touched once the table exists, for compose's
health check).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.session

TABLE = os.environ.get("TABLE", "Orders")
READY = Path(os.environ.get("READY_FILE", "/tmp/table-ready"))


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    session = botocore.session.get_session()
    dynamodb = session.create_client(
        "dynamodb",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )
    create_table(dynamodb)
    READY.touch()
    per_second = float(os.environ.get("WRITES_PER_SECOND", "20"))
    written = 0
    while True:
        key = f"order-{random.randrange(1000):04d}"
        if random.random() < 0.1:
            dynamodb.delete_item(TableName=TABLE, Key={"order_id": {"S": key}})
        else:
            dynamodb.put_item(
                TableName=TABLE,
                Item={
                    "order_id": {"S": key},
                    "status": {"S": random.choice(["new", "paid", "shipped"])},
                    "total": {"N": f"{random.randrange(100, 100_000) / 100:.2f}"},
                    "written": {"N": str(written)},
                },
            )
        written += 1
        if written % 500 == 0:
            print(f"writer: {written} changes", flush=True)
        time.sleep(1 / per_second)


def create_table(client: Any) -> None:
    for _ in range(60):  # the local stack may still be starting
        try:
            client.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
            print(f"writer: table {TABLE} created", flush=True)
            return
        except client.exceptions.ResourceInUseException:
            return
        except botocore.exceptions.EndpointConnectionError:
            time.sleep(1)
    raise SystemExit("writer: the local stack did not answer within 60 s")


if __name__ == "__main__":
    raise SystemExit(main())
