"""The MultiLang message codec, checked against what amazon-kclpy and aws-kcl require."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from shardline.multilang import protocol
from shardline.multilang.protocol import CheckpointRequest, ProtocolError, Status
from shardline.streams.wire import record_from_mapping

RAW: dict[str, Any] = {
    "eventID": "0d391139",
    "eventName": "MODIFY",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "us-east-1",
    "dynamodb": {
        "ApproximateCreationDateTime": 1700000000.25,
        "Keys": {"pk": {"S": "a"}},
        "NewImage": {"pk": {"S": "a"}, "n": {"N": "1.50"}, "e": {"L": []}},
        "OldImage": {"pk": {"S": "a"}},
        "SequenceNumber": "300000000000000499659",
        "SizeBytes": 26,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    },
}


WIRE = record_from_mapping(RAW)


def decoded(line: bytes) -> Any:
    assert line.endswith(b"\n") and line.count(b"\n") == 1, "one message per line"
    return json.loads(line)


def test_initialize_always_carries_both_sequence_keys() -> None:
    assert decoded(protocol.initialize("shardId-1", "TRIM_HORIZON", 0)) == {
        "action": "initialize",
        "shardId": "shardId-1",
        "sequenceNumber": "TRIM_HORIZON",
        "subSequenceNumber": 0,
    }


def test_process_records_every_nested_object_has_an_action() -> None:
    message = decoded(protocol.process_records([WIRE], 1234))
    assert message["action"] == "processRecords"
    assert message["millisBehindLatest"] == 1234
    (record,) = message["records"]
    assert record == {
        "action": "record",
        "data": record["data"],
        "partitionKey": "300000000000000499659",
        "sequenceNumber": "300000000000000499659",
        "subSequenceNumber": 0,
        "approximateArrivalTimestamp": 1700000000250,
    }


def test_record_data_is_the_adapter_json_with_milliseconds() -> None:
    record = decoded(protocol.process_records([WIRE], 0))["records"][0]
    data = json.loads(base64.b64decode(record["data"]))
    assert data["dynamodb"]["ApproximateCreationDateTime"] == 1700000000250
    assert {k: v for k, v in data.items() if k != "dynamodb"} == {
        k: v for k, v in RAW.items() if k != "dynamodb"
    }
    ddb = {k: v for k, v in data["dynamodb"].items() if k != "ApproximateCreationDateTime"}
    assert ddb == {k: v for k, v in RAW["dynamodb"].items() if k != "ApproximateCreationDateTime"}
    assert WIRE.dynamodb.ApproximateCreationDateTime == 1700000000.25, "input untouched"


def test_lifecycle_messages() -> None:
    assert decoded(protocol.lease_lost()) == {"action": "leaseLost"}
    assert decoded(protocol.shard_ended()) == {"action": "shardEnded"}
    assert decoded(protocol.shutdown_requested()) == {"action": "shutdownRequested"}


def test_checkpoint_reply_echoes_the_request() -> None:
    request = CheckpointRequest("12", None, "12")
    assert decoded(protocol.checkpoint_reply(request, "ShutdownException")) == {
        "action": "checkpoint",
        "sequenceNumber": "12",
        "subSequenceNumber": None,
        "error": "ShutdownException",
    }


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"action":"status","responseFor":"initialize"}\n', Status("initialize")),
        (b'{"action":"checkpoint","sequenceNumber":"5"}', CheckpointRequest("5", None, "5")),
        (
            b'{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null}',
            CheckpointRequest(None, None, None),
        ),
        (
            b'{"action":"checkpoint","sequenceNumber":7,"subSequenceNumber":0}',
            CheckpointRequest("7", 0, 7),
        ),
        (b"\n", None),
        (b"   \r\n", None),
        (b"hello from print()\n", None),
        (b"{not json\n", None),
        (b'{"action":"dance"}\n', None),
        (b"[1, 2]\n", None),
    ],
)
def test_decode_child_line(line: bytes, expected: object) -> None:
    assert protocol.decode_child_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        b'{"action":"status"}',
        b'{"action":"checkpoint","sequenceNumber":{"a":1}}',
        b'{"action":"checkpoint","sequenceNumber":"1","subSequenceNumber":"x"}',
    ],
)
def test_malformed_protocol_messages(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode_child_line(line)
