"""The local stack's control channel (``/_shardline/``) and ``python -m shardline.local`` flags."""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shardline.local import LocalStack
from shardline.local.args import register_local_arguments
from shardline.local.control import ControlError, LocalControl
from shardline.local.faults import FaultRule

pytestmark = pytest.mark.integration

CREDENTIALS = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack() as running:
        yield running


def make_table(endpoint: str, name: str) -> None:
    boto3.client("dynamodb", endpoint_url=endpoint, **CREDENTIALS).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def test_faults_over_the_control_channel(stack: LocalStack) -> None:
    control = LocalControl(stack.endpoint_url)
    first = control.add_fault("throttle:ops=GetRecords:rate=0.5")
    second = control.add_fault(FaultRule.parse("drop:ops=streams:count=2"))
    rules = control.faults()["rules"]
    assert [r["id"] for r in rules] == [first, second]
    assert rules[0]["kind"] == "throttle" and rules[0]["rate"] == 0.5
    control.remove_fault(first)
    assert [r["id"] for r in control.faults()["rules"]] == [second]
    control.clear_faults()
    assert control.faults()["rules"] == []
    with pytest.raises(ControlError, match="unknown fault kind"):
        control.add_fault("explode")


def test_settings_over_the_control_channel(stack: LocalStack) -> None:
    control = LocalControl(stack.endpoint_url)
    try:
        changed = control.settings(iterator_ttl=5, describe_page_size=2, parent_open_for=0.5)
        assert (changed["iterator_ttl"], changed["describe_page_size"]) == (5, 2)
        assert stack.api.iterator_ttl == 5 and stack.parent_open_for == 0.5
        with pytest.raises(ControlError, match="unknown settings"):
            control.settings(speed="fast")
    finally:
        control.settings(iterator_ttl=None, describe_page_size=100, parent_open_for=None)


def test_shards_streams_and_items_over_the_control_channel(stack: LocalStack) -> None:
    control = LocalControl(stack.endpoint_url)
    make_table(stack.endpoint_url, "control-table")
    (parent,) = [s["ShardId"] for s in control.shards("control-table")]
    left, right = control.split("control-table")
    (child,) = control.rollover("control-table", left, parent_open_for=30)
    listed = {s["ShardId"]: s for s in control.shards("control-table")}
    assert set(listed) == {parent, left, right, child}
    assert "EndingSequenceNumber" not in listed[left]["SequenceNumberRange"]  # left open
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{stack.endpoint_url}/_shardline/close-pending",
            data=b'{"table": "control-table"}',
            method="POST",
        )
    ) as response:
        assert b"closed" in response.read()
    with urllib.request.urlopen(f"{stack.endpoint_url}/_shardline/shards?table=control-table") as r:
        assert child.encode() in r.read()
    client = boto3.client("dynamodb", endpoint_url=stack.endpoint_url, **CREDENTIALS)
    client.put_item(TableName="control-table", Item={"pk": {"S": "gone-soon"}})
    assert control.expire("control-table", {"pk": {"S": "gone-soon"}}) is True
    old = stack.stream_arn("control-table")
    control.disable_stream("control-table")
    assert control.enable_stream("control-table") != old
    with pytest.raises(ControlError, match="table name is required"):
        control.rollover("")
    with pytest.raises(ControlError, match="not found"):
        control.shards("no-such-table")


def test_unknown_control_paths_are_404(stack: LocalStack) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{stack.endpoint_url}/_shardline/nothing")
    with caught.value as error:  # the error holds the open response
        assert error.code == 404


def test_flags_map_to_the_stack() -> None:
    parser = argparse.ArgumentParser()
    register_local_arguments(parser)
    args = parser.parse_args(
        ["--fault", "throttle:ops=GetRecords:rate=0.1", "--fault", "empty:count=2",
         "--retention", "60", "--children-first", "--lazy-shard-end", "--port", "0"]
    )  # fmt: skip
    assert [rule.kind for rule in args.faults] == ["throttle", "empty"]
    assert (args.retention, args.children_first, args.lazy_shard_end) == (60.0, True, True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--fault", "explode"])


def test_python_m_shardline_local_serves_with_faults() -> None:
    fault = "throttle:ops=ListStreams:count=1"
    command = [sys.executable, "-m", "shardline.local", "--port", "0", "--fault", fault,
               "--describe-page-size", "1"]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            endpoint = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline())
            assert endpoint
            client = boto3.client(
                "dynamodbstreams", endpoint_url=endpoint.group(0), config=NO_RETRIES, **CREDENTIALS
            )
            with pytest.raises(ClientError, match="LimitExceededException"):
                client.list_streams()
            assert "Streams" in client.list_streams()
            assert LocalControl(endpoint.group(0)).settings()["describe_page_size"] == 1
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:
                process.kill()
